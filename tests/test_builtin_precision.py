"""The built-in reviewer's precision and recall on a seeded-defect corpus.

Every file of the corpus is written here, as literal source, and reviewed as a newly added file
(every line added, the file's text given), the way a pull request adding it would be. Each file
lists its seeded defects by a fragment of the line they sit on and the check expected to report
them; every other line is a decoy (``os.environ`` passwords, ``print`` in a CLI entry point, a
TODO in prose, a conflict sample in a string literal, lock-file hashes, documented placeholder
keys, ``# noqa``, output inside the logging function itself, …). Scoring is per (line, check):

- a finding on a seeded line with the expected check is a true positive;
- any other finding is a false positive;
- a seeded defect with no such finding is a false negative.

Only ruff is used among the external linters: ``node`` and ``shellcheck`` are not installed on
every machine, and the figures must not depend on where the test runs. Secret-looking values
are assembled at run time, so this file never contains anything a secret scanner would flag.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from review_agent.patches import parse_patch
from review_agent.reviewers.base import ReviewRequest
from review_agent.reviewers.builtin import BuiltinReviewer, find_tool

MIN_PRECISION = 0.9
MIN_RECALL = 0.8

GH_TOKEN = "gh" + "p_" + "Qm7Rt2Vx9Lk4Np8Ws3Yb6Hd1Fg5Jc0Za2Xe7"
STRIPE = "sk" + "_live_" + "4eC39HqLyjWDarjtT1zdp7dc9Q"
AWS_DOC = "AKIA" + "IOSFODNN7" + "EXAMPLE"
SLACK_DOC = "https://hooks.slack.com/services/" + "T00000000/B00000000/" + "X" * 24
SLACK_REAL = "https://hooks.slack.com/services/" + "T024BE7LD/B01QX7ZK2M9/" + "q8ZkLm2pXwT7rV4nB9sD1fGh"
PASSWORD = "Zq8kLm2" + "pXw9"
INTEGRITY = (
    "sha512-XI5MPzVNApjAyhQzphX8BkmKsKUxD4LdyK24iZeQeQ6b" + "PpSxpKU+0S4Qxy2dYlvE6MWkk+d4H+P6+4WkC6fmx9yA=="
)
SHA256 = "70761cfe03c773ceb22aa2f671b47579" + "76145175cdfca038c02654d061d6dcc6"


@dataclass(frozen=True)
class Sample:
    path: str
    text: str
    defects: dict[str, str] = field(default_factory=dict)  # line fragment -> expected check


CORPUS: tuple[Sample, ...] = (
    # ------------------------------------------------------------------ Python
    Sample(
        "app/service.py",
        f'''"""Order service.

Usage::

    print(load_orders(conn))  # prints the orders
"""

import ast
import hashlib
import json
import os
import pickle
import subprocess

import requests
import yaml

API_TOKEN = "{GH_TOKEN}"
db_password = "{PASSWORD}"
password = os.environ["DB_PASSWORD"]
TOKEN_URL = "https://auth.internal/oauth/token"
token_type = "bearer"
AWS_DOC_KEY = "{AWS_DOC}"


def load_cache(blob: bytes) -> object:
    return pickle.loads(blob)


def load_json(blob: bytes) -> object:
    return json.loads(blob)


def read_config(text: str) -> object:
    unsafe = yaml.load(text)
    safe = yaml.safe_load(text)
    return unsafe, safe


def thumbnail(name: str) -> None:
    subprocess.run(f"convert {{name}} thumb.png", shell=True)
    subprocess.run(["convert", name, "thumb.png"], check=True)
    subprocess.run("make clean", shell=True)


def fetch(url: str) -> bytes:
    insecure = requests.get(url, verify=False, timeout=10)
    secure = requests.get(url, timeout=10)
    return insecure.content + secure.content


def compute(expression: str) -> object:
    risky = eval(expression)
    literal = ast.literal_eval(expression)
    return risky, literal


def find_user(cursor, name: str) -> object:
    cursor.execute(f"SELECT * FROM users WHERE name = '{{name}}'")
    cursor.execute("SELECT * FROM users WHERE name = %s", (name,))
    return cursor.fetchone()


def checksum(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def load_orders(conn) -> list:
    rows = conn.fetch_all()
    print(rows)
    # TODO: handle pagination
    label = "TODO list"
    print("loaded")  # noqa: T201
    return [rows, label]


def debug_here() -> None:
    breakpoint()


def log(message: str) -> None:
    print(message)


def todo_items() -> list:
    return [undefined_helper()]
''',
        {
            "API_TOKEN =": "secret",
            "db_password =": "secret",
            "pickle.loads": "security",
            "yaml.load(text)": "security",
            'f"convert': "security",
            "verify=False": "security",
            "risky = eval(": "security",
            "SELECT * FROM users WHERE name = '": "security",
            "print(rows)": "debug",
            "TODO: handle": "todo",
            "breakpoint()": "debug",
            "undefined_helper": "lint",
        },
    ),
    Sample(
        "tests/test_merge.py",
        '''"""Merge tool tests: conflict samples are data here."""

SAMPLE = """\\
<<<<<<< HEAD
retries = 3
=======
retries = 5
>>>>>>> feature
"""


def test_sample_has_markers() -> None:
    assert SAMPLE.count("=======") == 1
''',
    ),
    Sample(
        "mytool/cli.py",
        '''"""Command line entry point."""

import sys


def main() -> int:
    print("usage: mytool FILE")
    print("error: no such file", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
''',
    ),
    Sample(
        "scripts/migrate.py",
        """import sqlite3


def run(path: str) -> None:
    conn = sqlite3.connect(path)
    print(f"migrating {path}")
    conn.close()
""",
    ),
    # ------------------------------------------------------------------ JavaScript / TypeScript
    Sample(
        "src/api/users.ts",
        f"""import {{ exec, execFile }} from "child_process";
import https from "https";
import {{ db, sql }} from "../db";

const STRIPE_KEY = "{STRIPE}";
const webhook = "{SLACK_DOC}";
const apiKey = process.env.API_KEY;
const note = "TODO: not a comment";

export async function getUser(req, res) {{
  const user = await db.query(`SELECT * FROM users WHERE id = ${{req.params.id}}`);
  const same = await db.query(sql`SELECT * FROM users WHERE id = ${{req.params.id}}`);
  const order = await db.query("SELECT * FROM orders WHERE id = " + req.params.order);
  console.log(user);
  // console.log(same)
  console.log(same); // eslint-disable-line no-console
  // TODO: validate the input
  const result = eval(req.body.expression);
  const parsed = JSON.parse(req.body.payload);
  const m = /^[a-z]+$/.exec(req.params.name);
  exec(`convert ${{req.query.file}} out.png`);
  execFile("convert", [req.query.file, "out.png"]);
  const agent = new https.Agent({{ rejectUnauthorized: false }});
  debugger;
  res.json({{ user, same, order, result, parsed, m, agent, apiKey, note, webhook }});
}}

export function log(...args: unknown[]) {{
  console.log("[app]", ...args);
}}

export class Logger {{
  info(message: string) {{
    console.log(message);
  }}
}}

export const SAMPLE = `
<<<<<<< HEAD
a
=======
b
>>>>>>> other
`;
""",
        {
            "const STRIPE_KEY": "secret",
            "db.query(`SELECT": "security",
            '"SELECT * FROM orders': "security",
            "  console.log(user);": "debug",
            "TODO: validate": "todo",
            "eval(req.body": "security",
            "exec(`convert": "security",
            "rejectUnauthorized: false": "security",
            "debugger;": "debug",
        },
    ),
    Sample(
        "src/logger.js",
        """export function write(level, message) {
  console.log(`[${level}] ${message}`);
}
""",
    ),
    Sample(
        "src/config.js",
        """export const config = {
<<<<<<< HEAD
  retries: 3,
=======
  retries: 5,
>>>>>>> feature/retry
};
""",
        {"<<<<<<< HEAD": "conflict-marker"},
    ),
    # ------------------------------------------------------------------ shell
    Sample(
        "deploy/install.sh",
        f"""#!/bin/sh
set -eu
# TODO: support arm64
export GITHUB_TOKEN={GH_TOKEN}
export DB_PASSWORD="${{DB_PASSWORD:?set it}}"
curl -fsSL https://get.example.com/install.sh | sh
curl -fsSL https://get.example.com/install.sh -o install.sh
sha256sum -c install.sh.sha256
curl -k https://internal.example/tool -o tool
echo "TODO: nothing to see"
echo "Install with: curl -fsSL https://get.example.com | sh"
eval "$USER_CMD"
chmod 777 /var/run/app.sock
chmod 755 tool
DATABASE_URL=postgres://app:{PASSWORD}@db.internal/prod
REDIS_URL=redis://:${{REDIS_PASSWORD}}@redis:6379/0
""",
        {
            "TODO: support": "todo",
            "export GITHUB_TOKEN": "secret",
            "install.sh | sh": "security",
            "curl -k": "security",
            'eval "$USER_CMD"': "security",
            "chmod 777": "security",
            "DATABASE_URL=": "secret",
        },
    ),
    # ------------------------------------------------------------------ YAML
    Sample(
        ".github/workflows/ci.yml",
        """name: ci
on: [pull_request, issues]
jobs:
  test:
    runs-on: ubuntu-latest
    services:
      postgres:
        image: postgres:16
        env:
          POSTGRES_PASSWORD: postgres
    steps:
      - uses: actions/checkout@v4
      - name: "TODO list"
        env:
          TITLE: ${{ github.event.pull_request.title }}
          GH_TOKEN: ${{ secrets.GITHUB_TOKEN }}
        run: |
          echo "$TITLE"
          echo "${{ github.event.pull_request.title }}"
      # TODO: cache dependencies
      - run: curl -sSL https://install.example.com/setup | bash
      - run: pip install -r requirements.txt
""",
        {
            'echo "${{ github.event': "security",
            "TODO: cache": "todo",
            "| bash": "security",
        },
    ),
    Sample(
        "config/app.yml",
        f"""database:
  host: db.internal
  password: {PASSWORD}
  password_file: /run/secrets/db
http:
  verify_ssl: false
  proxy_verify_ssl: true
<<<<<<< HEAD
timeout: 30
=======
timeout: 60
>>>>>>> main
""",
        {
            "password: ": "secret",
            "verify_ssl: false": "security",
            "<<<<<<< HEAD": "conflict-marker",
        },
    ),
    # ------------------------------------------------------------------ Dockerfile
    Sample(
        "Dockerfile",
        f"""FROM python:3.12-slim
# TODO: pin the base image by digest
ARG NPM_TOKEN
ENV API_KEY={PASSWORD}Qr
ENV PASSWORD_FILE=/run/secrets/db_password
LABEL description="TODO app backend"
RUN curl -fsSL https://deb.nodesource.com/setup_20.x | bash -
RUN curl -fsSL https://example.com/tool.tgz -o /tmp/tool.tgz && sha256sum -c /tmp/tool.sha256
RUN wget --no-check-certificate https://example.com/data.tgz
COPY . /app
""",
        {
            "TODO: pin": "todo",
            "ENV API_KEY": "secret",
            "setup_20.x | bash": "security",
            "--no-check-certificate": "security",
        },
    ),
    # ------------------------------------------------------------------ Markdown and prose
    Sample(
        "README.md",
        f"""# Todo

The TODO app keeps a list of tasks. See TODO.md for what is planned.

- [ ] TODO: write the changelog

Point the Slack integration at a webhook such as {SLACK_DOC}.
AWS credentials look like `{AWS_DOC}`.

<!-- TODO: add screenshots -->

A merge conflict looks like this:

```
<<<<<<< HEAD
ours
=======
theirs
>>>>>>> branch
```

```js
console.log(result); // TODO: remove
```

```sh
export SLACK_WEBHOOK={SLACK_REAL}
```
""",
        {"TODO: add screenshots": "todo", "export SLACK_WEBHOOK": "secret"},
    ),
    Sample(
        "CHANGELOG.md",
        """# Changelog

<<<<<<< HEAD
- Added retries
=======
- Added timeouts
>>>>>>> release
""",
        {"<<<<<<< HEAD": "conflict-marker"},
    ),
    Sample(
        "docs/guide.rst",
        """Guide
=======

Resolve conflicts like this::

    <<<<<<< HEAD
    ours
    =======
    theirs
    >>>>>>> branch

The TODO section lists open work.
""",
    ),
    # ------------------------------------------------------------------ lock files and examples
    Sample(
        "package-lock.json",
        f"""{{
  "name": "app",
  "lockfileVersion": 3,
  "packages": {{
    "node_modules/left-pad": {{
      "version": "1.3.0",
      "resolved": "https://registry.npmjs.org/left-pad/-/left-pad-1.3.0.tgz",
      "integrity": "{INTEGRITY}"
    }}
  }}
}}
""",
    ),
    Sample(
        "poetry.lock",
        f"""[[package]]
name = "requests"
version = "2.32.3"
files = [
    {{file = "requests-2.32.3-py3-none-any.whl", hash = "sha256:{SHA256}"}},
]
""",
    ),
    Sample(
        "requirements.txt",
        f"""requests==2.32.3 \\
    --hash=sha256:{SHA256}
""",
    ),
    Sample(
        ".env.example",
        """API_KEY=your-api-key-here
DB_PASSWORD=changeme
SECRET_KEY=
SLACK_WEBHOOK_URL=https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX
""",
    ),
)

# A second batch, written after the checks above were built and measured before any change:
# it keeps the figures honest about lines the checks were not designed around.
MORE: tuple[Sample, ...] = (
    Sample(
        "app/tasks.py",
        f"""import logging
import marshal
import os
import tempfile

import jinja2

log = logging.getLogger(__name__)
SECRET_KEY = "django-insecure-{PASSWORD}7hq"
DEFAULT_PASSWORD = "changeme"
settings = {{"password": "hunter2!Q"}}
QUERY = "SELECT id FROM users WHERE active = 1"


def purge(path: str, uid: int, cursor) -> None:
    os.system(f"rm -rf {{path}}")
    cursor.execute("DELETE FROM sessions WHERE user_id = " + str(uid))
    log.info(f"Selected {{uid}} rows from cache")


def restore(data: bytes, code: str) -> object:
    exec(code)
    return marshal.loads(data)


def scratch() -> str:
    return tempfile.mktemp()


def render(source: str) -> str:
    env = jinja2.Environment(autoescape=False)
    return env.from_string(source).render()


def trace() -> None:
    import pdb

    pdb.set_trace()
""",
        {
            "SECRET_KEY =": "secret",
            '"password": "hunter2': "secret",
            "os.system": "security",
            "DELETE FROM sessions": "security",
            "exec(code)": "security",
            "marshal.loads": "security",
            "tempfile.mktemp()": "security",
            "autoescape=False": "security",
            "pdb.set_trace()": "debug",
            "    import pdb": "debug",
        },
    ),
    Sample(
        "bench/run.py",
        """import time


def main() -> None:
    start = time.perf_counter()
    print(f"took {time.perf_counter() - start:.3f} s")
""",
    ),
    Sample(
        "web/src/widget.js",
        """export function render(el, userInput, id, n) {
  el.innerHTML = userInput;
  setTimeout("refresh()", 100);
  console.debug("rendered", id);
  try {
    refresh();
  } catch (err) {
    console.error(err);
  }
  const url = `https://api.example.com/users/${id}`;
  const password = "";
  const { PASSWORD } = process.env;
  const msg = `Selected ${n} items from the list`;
  return { url, password, PASSWORD, msg };
}
""",
        {
            "innerHTML = userInput": "security",
            'setTimeout("refresh()"': "security",
            "console.debug": "debug",
        },
    ),
    Sample(
        "ops/bootstrap.sh",
        """#!/bin/bash
wget -qO- https://get.example.com/agent | sudo bash
bash <(curl -s https://get.example.com/other)
sudo chmod -R 777 /data
ssh -o StrictHostKeyChecking=no deploy@host true
echo "done"  # FIXME: report the version
""",
        {
            "| sudo bash": "security",
            "bash <(curl": "security",
            "chmod -R 777": "security",
            "FIXME": "todo",
        },
    ),
    Sample(
        ".github/workflows/label.yml",
        """on: pull_request_target
jobs:
  label:
    if: contains(github.event.pull_request.title, 'WIP')
    runs-on: ubuntu-latest
    steps:
      - run: echo "branch ${{ github.head_ref }}"
      - run: docker run -e PASSWORD=Qw7rT2yU9iO1 app
""",
        {"github.head_ref": "security", "PASSWORD=Qw7": "secret"},
    ),
    Sample(
        "deploy/k8s.yaml",
        """tls:
  insecure_skip_verify: true
env:
  - name: DB_PASSWORD
    valueFrom:
      secretKeyRef:
        name: db
        key: password
""",
        {"insecure_skip_verify": "security"},
    ),
    Sample(
        "docker/Dockerfile",
        """FROM node:20
ENV NODE_TLS_REJECT_UNAUTHORIZED=0
ADD https://example.com/app.tar.gz /app/
RUN npm ci
""",
        {"NODE_TLS_REJECT_UNAUTHORIZED": "security"},
    ),
    Sample(
        "docs/keys.md",
        """# Keys

Generate a key, it starts like this:

```
-----BEGIN OPENSSH PRIVATE KEY-----
...
-----END OPENSSH PRIVATE KEY-----
```

Run `make fixme` to list open work.
""",
    ),
    Sample(
        "src/main/resources/application.properties",
        """spring.datasource.url=jdbc:postgresql://db/app
spring.datasource.password=Zq8kLm2pXw9
spring.mail.password=${MAIL_PASSWORD}
""",
        {"datasource.password": "secret"},
    ),
    Sample(
        "pkg/client/client.go",
        """package client

import (
	"crypto/tls"
	"fmt"
	"net/http"
)

// TODO(alice): add retries
func New() *http.Client {
	fmt.Println("creating client")
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	return &http.Client{Transport: tr}
}
""",
        {"TODO(alice)": "todo", "InsecureSkipVerify: true": "security"},
    ),
)


def _review(sample: Sample) -> list[tuple[int, str]]:
    lines = sample.text.rstrip("\n").split("\n")
    hunk = f"@@ -0,0 +1,{len(lines)} @@\n" + "".join(f"+{line}\n" for line in lines)
    request = ReviewRequest(path=sample.path, patch=parse_patch(sample.path, hunk), content=sample.text)
    reviewer = BuiltinReviewer(locate=lambda name: find_tool(name) if name == "ruff" else None)
    result = reviewer.review(request)
    assert "failed" not in result.summary, result.summary  # a crashed check is no clean file
    out = []
    for c in result.comments:
        check = c.body.split("**")[1]
        out.append((c.line, check))
    return out


def _seeded(sample: Sample) -> set[tuple[int, str]]:
    lines = sample.text.split("\n")
    seeded = set()
    for fragment, check in sample.defects.items():
        rows = [n for n, line in enumerate(lines, start=1) if fragment in line]
        assert len(rows) == 1, f"{sample.path}: fragment {fragment!r} is on rows {rows}, not one"
        seeded.add((rows[0], check))
    return seeded


@dataclass
class Score:
    true_positives: list[str] = field(default_factory=list)
    false_positives: list[str] = field(default_factory=list)
    false_negatives: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float:
        found = len(self.true_positives) + len(self.false_positives)
        return len(self.true_positives) / found if found else 1.0

    @property
    def recall(self) -> float:
        seeded = len(self.true_positives) + len(self.false_negatives)
        return len(self.true_positives) / seeded if seeded else 1.0


def score(corpus: tuple[Sample, ...]) -> Score:
    result = Score()
    for sample in corpus:
        seeded = _seeded(sample)
        found = set(_review(sample))
        rows = sample.text.split("\n")
        for line, check in sorted(found):
            where = f"{sample.path}:{line} {check}: {rows[line - 1].strip()[:60]}"
            (result.true_positives if (line, check) in seeded else result.false_positives).append(where)
        for line, check in sorted(seeded - found):
            result.false_negatives.append(f"{sample.path}:{line} {check}: {rows[line - 1].strip()[:60]}")
    return result


needs_ruff = pytest.mark.skipif(find_tool("ruff") is None, reason="ruff is not installed")


@needs_ruff
def test_precision_and_recall_on_the_seeded_corpus(capsys: pytest.CaptureFixture[str]) -> None:
    result = score(CORPUS + MORE)
    seeded = len(result.true_positives) + len(result.false_negatives)
    decoys = sum(len(s.text.rstrip("\n").split("\n")) for s in CORPUS + MORE) - seeded
    line = (
        f"built-in reviewer on the seeded corpus ({len(CORPUS + MORE)} files, {seeded} seeded defects, "
        f"{decoys} other lines): precision {result.precision:.2f}, recall {result.recall:.2f} "
        f"({len(result.true_positives)} found, {len(result.false_positives)} false positives, "
        f"{len(result.false_negatives)} missed)"
    )
    with capsys.disabled():
        print(f"\n{line}")
        for where in result.false_positives:
            print(f"  false positive: {where}")
        for where in result.false_negatives:
            print(f"  missed: {where}")
    assert seeded >= 40  # the corpus is not trivially small
    assert result.precision >= MIN_PRECISION, (line, result.false_positives)
    assert result.recall >= MIN_RECALL, (line, result.false_negatives)


@needs_ruff
@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("app/service.py", "pickle.loads"),
        ("app/service.py", "yaml.load(text)"),
        ("app/service.py", 'f"convert'),
        ("app/service.py", "verify=False"),
        ("app/service.py", "risky = eval("),
        ("app/service.py", "SELECT * FROM users WHERE name = '"),
    ],
)
def test_the_misses_of_the_held_out_measurement_are_found(path: str, fragment: str) -> None:
    sample = next(s for s in CORPUS if s.path == path)
    row = next(n for n, line in enumerate(sample.text.split("\n"), start=1) if fragment in line)
    assert (row, "security") in _review(sample)


@needs_ruff
@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("README.md", "The TODO app"),  # TODO in Markdown prose
        ("README.md", "Point the Slack integration"),  # Slack's documented placeholder webhook
        ("tests/test_merge.py", "<<<<<<< HEAD"),  # a conflict sample inside a string literal
        ("app/service.py", "# noqa: T201"),  # a print marked noqa
        ("src/api/users.ts", '"[app]"'),  # console.log inside the logging function itself
    ],
)
def test_the_false_positives_of_the_held_out_measurement_are_gone(path: str, fragment: str) -> None:
    sample = next(s for s in CORPUS if s.path == path)
    row = next(n for n, line in enumerate(sample.text.split("\n"), start=1) if fragment in line)
    assert [check for line, check in _review(sample) if line == row] == []


def test_the_fast_line_triggers_never_hide_a_rule() -> None:
    # the reviewer lexes only lines whose trigger fires: a rule that can match a line its
    # trigger rejects would never report anything
    from review_agent.reviewers.builtin import debug, security

    lines = [line for s in CORPUS + MORE for line in s.text.split("\n")]
    checked = 0
    for line in lines:
        for rule in security.RULES:
            if rule.regex.search(line):
                checked += 1
                assert security.needs_view(line), (rule.name, line)
        for patterns in debug.DEBUG_PATTERNS.values():
            for pattern in patterns:
                if pattern.regex.search(line):
                    checked += 1
                    assert debug.needs_view(line), line
    assert checked >= 20
