"""The project documents itself: docs/architecture.md is the one account of the design, and no
file of the repository sends its reader to a document outside it.

Why a test: citations drift. A docstring written against a design page that lived beside the
repository reads as a dead reference to everyone who clones it, and a section renamed in the
architecture page leaves citations pointing at nothing. Both are found here, by reading every
tracked file, instead of by a reader who gives up.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = "docs/architecture.md"

# The sections code and tests cite by name; renaming one breaks their citations.
REQUIRED_SECTIONS = (
    "Layers",
    "State",
    "Storage",
    "Exactly once",
    "Audit log",
    "Review flow",
    "GitHub App",
    "Pitfalls",
)

# Built from parts so that this file does not cite what it forbids.
OUTSIDE_DESIGN = re.compile(r"\b" + "DESIGN" + r"(?:\.md\b|\s*§)")
# The directories beside this repository on the machine it was built on, relative or absolute.
OUTSIDE_PATH = re.compile(r"(?:\.\./)+" + "shared" + r"\b|/work/(?:" + "shared|main|wt" + r")\b")

# scripts/test.sh installs the pgvector extension with the machine's install script when one
# exists beside the checkout. That is a tool the test command runs (and it goes on without one),
# not a document anyone is sent to read, so these lines of that file may name the path.
ALLOWED_OUTSIDE_PATHS = {("scripts/test.sh", "install-pgvector.sh")}

CITATION = re.compile(r"docs/architecture\.md,[\s#*]*\"([^\"]+)\"")


def tracked_files() -> list[Path]:
    """Every file git tracks (the repository as a clone sees it), text only."""
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.decode(
        "utf-8", "surrogateescape"
    )
    files = []
    for name in filter(None, out.split("\0")):
        path = ROOT / name
        if not path.is_file():
            continue  # deleted in the work tree, not yet committed
        try:
            path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        files.append(path)
    return files


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def headings() -> set[str]:
    text = (ROOT / ARCHITECTURE).read_text(encoding="utf-8")
    return {m.group(1).strip() for m in re.finditer(r"^#{2,3} (.+)$", text, re.M)}


def test_the_architecture_page_has_every_section_the_code_cites_by_name() -> None:
    assert set(REQUIRED_SECTIONS) <= headings(), sorted(set(REQUIRED_SECTIONS) - headings())


def test_no_file_cites_a_design_document_outside_the_repository() -> None:
    files = tracked_files()
    assert any(_rel(p) == "review_agent/cli/common.py" for p in files)  # the listing is the repository
    found = [
        f"{_rel(path)}:{n}: {line.strip()}"
        for path in files
        if _rel(path) != ARCHITECTURE
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if OUTSIDE_DESIGN.search(line)
    ]
    assert not found, "cite docs/architecture.md by section instead:\n" + "\n".join(found)


def test_no_file_refers_to_a_path_outside_the_repository() -> None:
    found = []
    for path in tracked_files():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not OUTSIDE_PATH.search(line):
                continue
            if any(_rel(path) == f and what in line for f, what in ALLOWED_OUTSIDE_PATHS):
                continue
            found.append(f"{_rel(path)}:{n}: {line.strip()}")
    assert not found, "\n".join(found)


def test_every_citation_of_the_architecture_page_names_one_of_its_sections() -> None:
    sections = headings()
    cited: list[tuple[str, str]] = []
    for path in tracked_files():
        for m in CITATION.finditer(path.read_text(encoding="utf-8")):
            cited.append((_rel(path), m.group(1)))
    assert len(cited) >= 10  # the pattern still finds the citations the code makes
    unknown = [f"{where}: {section!r}" for where, section in cited if section not in sections]
    assert not unknown, "no such section in docs/architecture.md:\n" + "\n".join(unknown)


def test_the_review_flow_names_every_node_of_the_graph() -> None:
    """The diagram is the one picture of the workflow: a node added to the graph must appear in
    it (and a node that is only planned must say so)."""
    build = (ROOT / "review_agent/graph/build.py").read_text(encoding="utf-8")
    nodes = set(re.findall(r"add_node\(\s*\"(\w+)\"", build))
    assert {"start", "plan", "review_window", "publish"} <= nodes
    text = (ROOT / ARCHITECTURE).read_text(encoding="utf-8")
    flow = text.split("## Review flow", 1)[1].split("\n## ", 1)[0]
    diagram = flow.split("```", 2)[1]
    missing = sorted(n for n in nodes if not re.search(rf"\b{n}\b", diagram))
    assert not missing, f"nodes of graph/build.py missing from the Review flow diagram: {missing}"
