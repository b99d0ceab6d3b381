"""The ``security`` check: code that runs data as code, turns TLS verification off, or builds
SQL or shell commands from strings.

Python is ruff's job: bandit's rules as ruff implements them (``ruff/S301`` pickle, ``S506``
``yaml.load``, ``S602`` ``shell=True``, ``S501`` ``verify=False``, ``S307`` ``eval``, ``S608``
SQL by string building, ``os.system`` of a built command, …; the selection is in
``linters.py``), so it needs the file's text.
Other languages have no such tool installed everywhere, so a few narrow rules live here,
matched on code tokens only (a rule's words in a comment or a documentation sample are not
code): JS/TS ``eval``/``new Function``/string ``setTimeout``, ``exec`` of a built command,
``shell: true``, ``rejectUnauthorized: false``, SQL in an untagged template literal or by
concatenation, data assigned to ``innerHTML``; Go ``InsecureSkipVerify: true``; shell,
Dockerfile, Makefile and CI YAML ``curl … | sh``, ``sh <(curl …)``, ``curl -k``/``--insecure``,
``wget --no-check-certificate``, ``eval "$var"``, ``chmod 777``; configuration files that turn
TLS verification off; GitHub Actions ``run:`` steps that expand untrusted event text
(``${{ github.event.issue.title }}``) into a shell script.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from review_agent.reviewers.builtin.context import FileContext
from review_agent.reviewers.builtin.findings import RULE_PREFIX, Finding
from review_agent.reviewers.builtin.lexing import LineView

_RULE = f"{RULE_PREFIX}security/"


@dataclass(frozen=True)
class _Rule:
    name: str
    langs: frozenset[str]
    regex: re.Pattern[str]
    message: str
    on_code: bool = True  # match on code only (strings blanked), else on the uncommented line

    def target(self, view: LineView, lang: str | None) -> str:
        """Shell's own lexer knows a command from a quoted string (``echo "curl … | sh"``); in
        YAML and Dockerfiles a command is a scalar or text, so there only comments are removed."""
        return view.code if self.on_code or lang in _CODE_TOKENS_LANGS else view.uncommented


_JS = frozenset({"javascript"})
_GO = frozenset({"go"})
_CODE_TOKENS_LANGS = frozenset({"shell", "make"})
_SHELLISH = frozenset({"shell", "dockerfile", "yaml", "make"})
_CONFIG = frozenset({"yaml", "toml", "ini", "json", "env"})
_SQL = r"(?:SELECT\b[^`'\"]*\bFROM|INSERT\s+INTO|UPDATE\b[^`'\"]*\bSET|DELETE\s+FROM)\b"
_TLS_OFF = (
    "turns TLS certificate verification off: anyone on the network path can read and change "
    "the traffic. Fix the trust store instead."
)
RULES: tuple[_Rule, ...] = (
    _Rule(
        "eval",
        _JS,
        re.compile(r"(?<![\w$.])(?:(?:window|globalThis)\s*\.\s*)?eval\s*\("),
        "`eval()` runs a string as code; if any of it comes from outside, that is code "
        "injection. Parse data with `JSON.parse` or use a lookup table.",
    ),
    _Rule(
        "eval",
        _JS,
        re.compile(r"\bnew\s+Function\s*\("),
        "`new Function()` compiles a string into code, like `eval`; avoid it.",
    ),
    _Rule(
        "eval",
        _JS,
        re.compile(r"(?<![\w$.])(?:(?:window|globalThis)\s*\.\s*)?set(?:Timeout|Interval)\s*\(\s*[\"'`]"),
        on_code=False,
        message="A string passed to `setTimeout`/`setInterval` is compiled like `eval`; pass a function.",
    ),
    _Rule(
        "dom-xss",
        _JS,
        re.compile(r"\.\s*(?:inner|outer)HTML\s*\+?=(?!=)\s*(?:[A-Za-z_$]|`[^`]*\$\{)"),
        on_code=False,
        message="Markup built from data is assigned to `innerHTML`: unescaped input runs as script "
        "(XSS). Use `textContent`, or escape or sanitise it first.",
    ),
    _Rule(
        "command-injection",
        _JS,
        re.compile(
            r"(?:(?<![\w$.])|\b(?:child_process|childProcess|cp)\s*\.\s*)(?:exec|execSync)\s*\(\s*"
            r"(?:`[^`]*\$\{|(?P<q>['\"])[^'\"]*(?P=q)\s*\+)"
        ),
        on_code=False,
        message="`exec` runs a command built from data in a shell: a quote or `;` in the data "
        "runs other commands. Use `execFile`/`spawn` with an argument array.",
    ),
    _Rule(
        "shell-option",
        _JS,
        re.compile(r"\bshell\s*:\s*true\b"),
        "`shell: true` makes the arguments a shell command line; pass an argument array without a shell.",
    ),
    _Rule("tls-verify-off", _JS, re.compile(r"\brejectUnauthorized\s*:\s*false\b"), f"This {_TLS_OFF}"),
    _Rule("tls-verify-off", _GO, re.compile(r"\bInsecureSkipVerify\s*:\s*true\b"), f"This {_TLS_OFF}"),
    _Rule(
        "tls-verify-off",
        _JS | _SHELLISH | _CONFIG,
        re.compile(r"\bNODE_TLS_REJECT_UNAUTHORIZED['\"]?\s*[:=]\s*['\"]?0"),
        on_code=False,
        message=f"`NODE_TLS_REJECT_UNAUTHORIZED=0` {_TLS_OFF}",
    ),
    _Rule(
        "sql-string",
        _JS,
        re.compile(rf"(?<![\w$.\]\)])`(?=[^`]*{_SQL})[^`]*\$\{{", re.I),
        on_code=False,
        message="SQL built in a template literal: a value with a quote changes the query (SQL "
        "injection). Use the driver's placeholders or a tagged `sql` template.",
    ),
    _Rule(
        "sql-string",
        _JS,
        re.compile(rf"(?P<q>['\"])\s*{_SQL}[^'\"]*(?P=q)\s*\+", re.I),
        on_code=False,
        message="SQL built by concatenation: a value with a quote changes the query (SQL "
        "injection). Use the driver's placeholders.",
    ),
    _Rule(
        "pipe-to-shell",
        _SHELLISH,
        re.compile(
            r"\b(?:curl|wget)\b[^|;&#\n]*\|\s*(?:sudo\s+(?:-\S+\s+)*)?(?:ba|z|da|k)?sh\b(?!\.)"
            r"|\b(?:ba|z|da|k)?sh\s+<\(\s*(?:curl|wget)\b"
        ),
        on_code=False,
        message="A downloaded script is piped into a shell and runs unseen: a compromised or "
        "spoofed server runs code here. Download, verify a checksum, then run.",
    ),
    _Rule(
        "tls-verify-off",
        _SHELLISH,
        re.compile(
            r"\bcurl\b[^|;&#\n]*\s(?:--insecure\b|-[A-Za-z]*k[A-Za-z]*\b)"
            r"|\bwget\b[^|;&#\n]*\s--no-check-certificate\b"
            r"|\bGIT_SSL_NO_VERIFY\s*=\s*['\"]?(?:1|true)\b|\bhttp\.sslVerify\s*=?\s*false\b",
            re.I,
        ),
        on_code=False,
        message=f"This download {_TLS_OFF}",
    ),
    _Rule(
        "shell-eval",
        frozenset({"shell", "make"}),
        re.compile(r"(?<![\w-])eval\s+[\"']?\$"),
        on_code=False,
        message="`eval` of a variable runs whatever the variable holds as shell code; call the "
        "command directly with quoted arguments.",
    ),
    _Rule(
        "world-writable",
        _SHELLISH,
        re.compile(r"\bchmod\s+(?:-[A-Za-z]+\s+)*(?:0?777|a\+rwx|ugo\+rwx)\b"),
        on_code=False,
        message="`chmod 777` lets every user and process change this file; grant only what is needed.",
    ),
    _Rule(
        "tls-verify-off",
        _CONFIG,
        re.compile(
            r"(?i)\b(?:ssl[_-]?verify|verify[_-]?ssl|tls[_-]?verify|verify[_-]?certs?|sslverify)"
            r"[\"']?\s*[:=]\s*[\"']?(?:false|no|off|0)\b"
            r"|\b(?:insecure[_-]?skip[_-]?(?:tls[_-]?)?verify|skip[_-]?tls[_-]?verify|tls[_-]?insecure)"
            r"[\"']?\s*[:=]\s*[\"']?(?:true|yes|on|1)\b"
        ),
        on_code=False,
        message=f"This setting {_TLS_OFF}",
    ),
)

# Event fields anyone can write (an issue title, a branch name), after GitHub Security Lab's list.
_UNTRUSTED_EXPR = re.compile(
    r"\$\{\{[^}]*\b(?:github\.event\.(?:issue\.(?:title|body)|pull_request\.(?:title|body|head\.ref|"
    r"head\.label|head\.repo\.default_branch)|comment\.body|review\.body|review_comment\.body|"
    r"pages\.[\w*\[\]]*\.page_name|commits\.[\w*\[\]]*\.(?:message|author\.(?:email|name))|"
    r"head_commit\.(?:message|author\.(?:email|name))|workflow_run\.(?:head_branch|display_title|"
    r"head_commit\.message)|discussion\.(?:title|body))|github\.head_ref)\b"
)
_RUN_KEY = re.compile(r"^\s*(?:-\s+)?(?:run|script)\s*:")


def _in_run_block(rows: list[str], number: int) -> bool:
    """Whether YAML row ``number`` is a ``run:`` (or github-script ``script:``) value: on the
    key's own line, or in the block below it."""
    row = rows[number - 1] if 0 < number <= len(rows) else ""
    if _RUN_KEY.match(row):
        return True
    indent = len(row) - len(row.lstrip())
    for above in reversed(rows[: number - 1]):
        if not above.strip() or above.lstrip().startswith("#"):
            continue
        above_indent = len(above) - len(above.lstrip())
        if above_indent < indent:
            return _RUN_KEY.match(above) is not None
    return False


def _workflow(path: str) -> bool:
    p = PurePosixPath(path)
    return ".github" in p.parts or p.name in ("action.yml", "action.yaml")


def _ruff_security(ctx: FileContext) -> list[Finding]:
    return [
        Finding(
            d.row,
            "security",
            "warning",
            f"ruff `{d.code}`: {d.message}",
            key=d.code,
            rule=f"ruff/{d.code}",
        )
        for d in ctx.ruff() or []
        if d.row in ctx.added and d.code.startswith("S")
    ]


def check_security(ctx: FileContext) -> list[Finding]:
    if ctx.lang == "python":
        return _ruff_security(ctx)
    views = ctx.views
    if views is None:
        return []
    rules = [r for r in RULES if ctx.lang in r.langs]
    actions = ctx.lang == "yaml" and _workflow(ctx.path)
    findings: list[Finding] = []
    for number, _ in ctx.lines:
        view = views.get(number)
        if view is None:
            continue
        for rule in rules:
            if rule.regex.search(rule.target(view, ctx.lang)):
                findings.append(
                    Finding(
                        number, "security", "warning", rule.message, key=rule.name, rule=_RULE + rule.name
                    )
                )
        if actions and _UNTRUSTED_EXPR.search(view.uncommented) and _in_run_block(ctx.rows, number):
            findings.append(
                Finding(
                    number,
                    "security",
                    "warning",
                    "Untrusted event text (`${{ github.event… }}`) is expanded into a shell script: "
                    "a crafted title or branch name runs commands in the workflow. Pass it through "
                    "`env:` and quote the variable.",
                    key="actions-injection",
                    rule=_RULE + "actions-injection",
                )
            )
    return findings


# Words every rule above contains: a fast test before the rules themselves (a guard test checks
# that no rule can match a line without one of them).
TRIGGER = re.compile(
    r"eval|(?-i:new\s+Function)|set(?:Timeout|Interval)|HTML|exec|shell|reject|Insecure|TLS|SELECT|INSERT|UPDATE"
    r"|DELETE|curl|wget|SSL|chmod|verify|insecure|\$\{\{",
    re.I,
)


def needs_view(text: str) -> bool:
    return TRIGGER.search(text) is not None and (
        "${{" in text or any(rule.regex.search(text) for rule in RULES)
    )
