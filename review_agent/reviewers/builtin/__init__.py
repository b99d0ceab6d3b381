"""The built-in offline reviewer: deterministic static checks of a file's added lines.

Why it exists: with no model configured (no ``OPENAI_API_KEY`` and no ``OPENAI_BASE_URL``) a
review must still say something true and useful, in CI as on a laptop, without a network. So
this reviewer looks only at what the change *adds*: every comment sits on an added line (its
new-side number, side ``RIGHT``), which GitHub can always anchor, and which is the author's
own doing. It makes no model call, gives the same answer for the same input, and never raises:
a check that fails is named in the summary ("Check lint failed: ruff timed out after 10 s"),
never passed off as "no findings". Precision comes before count: the seeded-defect corpus in
``tests/test_builtin_precision.py`` holds it at precision ≥ 0.9 and recall ≥ 0.8.

It is a registry of small checks (``registry.py``), one module per family, delegating to
maintained tools where one does the job: ruff for Python (lint, debugger and ``print``, bandit's
security rules), Pygments to tell code from strings and comments in every language. Check ids,
shown in every comment as ``**id** (builtin/id): …``, set as the comment's ``rule`` (with the
precise rule: ``review-agent/secret``, ``ruff/S301``), and accepted in the ``disabled_checks``
preference (with or without the ``builtin/`` prefix; a precise rule id such as ``ruff/S608``
and a linter name ``ruff``, ``node``, ``shellcheck`` work too):

``secret`` (error for known token formats, warning for a literal assigned to a credential-like
    name or a password in a URL): AWS, GitHub, GitLab, Slack, Stripe, Google, OpenAI, Anthropic,
    npm, PyPI and SendGrid token formats, private key headers, ``password = "…"`` style
    assignments. Placeholders (``XXXXXXXX``, ``EXAMPLE``, ``${VAR}``) are not secrets. The value is
    never repeated: comments show only the public scheme prefix and the length.
``conflict-marker`` (error): ``<<<<<<<``, ``|||||||``, ``=======``, ``>>>>>>>`` at line start,
    except inside a string literal or a documentation code block (a sample). A lone ``=======``
    (a heading underline) counts only when another marker was added too.
``debug`` (error for calls that stop the program, warning for debugger statements and imports,
    info for output calls): Python through ruff (T100, T201, T203), JS/TS ``debugger`` and
    ``console.log``, Ruby, PHP, Java, Rust, C#, Elixir leftovers. Output calls are fine in entry
    points, scripts and logging code; ``# noqa`` and ``eslint-disable`` comments are honoured.
``security`` (warning): Python through ruff's bandit rules (pickle, ``yaml.load``, ``eval``,
    ``shell=True``, ``verify=False``, SQL by string building, …); JS/TS, shell, Dockerfile, CI
    YAML and configuration rules for ``eval``, command and SQL injection, TLS verification
    turned off, ``curl | sh``, and untrusted event text in GitHub Actions ``run:`` steps.
``lint`` (warning for likely bugs and syntax errors, info otherwise): ruff on Python, ``node
    --check`` on JavaScript, shellcheck on shell scripts, each only when installed and only on
    the file's own text (never a patch or a symlink's target); only findings on added lines
    are kept.
``todo`` (info; warning for Rust ``todo!()``/``unimplemented!()``, which panic): ``TODO``,
    ``FIXME``, ``XXX`` in an added comment or docstring (in Markdown, an HTML comment), never in
    a string or prose.
``long-line`` (info): added lines longer than ``max_line_length`` (default 200), one comment
    per file on the first of them; data and prose files are skipped.
``trailing-whitespace`` (info): one comment per file on the first added line that ends in
    spaces or tabs (CRLF line ends do not count); Markdown is skipped (hard line breaks).

Preferences read from ``request.preferences``: ``disabled_checks`` (list, or a comma-separated
string), ``severity_threshold`` (``info`` | ``warning`` | ``error``: findings below it are
dropped), ``max_line_length`` (int).
"""

from review_agent.reviewers.builtin.findings import CheckFailed, Finding
from review_agent.reviewers.builtin.languages import detect_language
from review_agent.reviewers.builtin.linters import LINTER_NAMES, parse_ruff_output, parse_shellcheck_output
from review_agent.reviewers.builtin.registry import CHECK_IDS, CHECKS, Check
from review_agent.reviewers.builtin.reviewer import BuiltinReviewer
from review_agent.reviewers.builtin.tools import (
    CommandOutput,
    CommandRunner,
    ToolLocator,
    find_tool,
    run_command,
)

__all__ = [
    "CHECKS",
    "CHECK_IDS",
    "LINTER_NAMES",
    "BuiltinReviewer",
    "Check",
    "CheckFailed",
    "CommandOutput",
    "CommandRunner",
    "Finding",
    "ToolLocator",
    "detect_language",
    "find_tool",
    "parse_ruff_output",
    "parse_shellcheck_output",
    "run_command",
]
