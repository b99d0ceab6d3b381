from review_agent.patches import fold_into_summary, parse_patch, split_anchored, split_git_diff
from review_agent.state.schemas import Comment

HUNKS = (
    "@@ -1,4 +1,5 @@\n"
    " import os\n"
    "-x = 1\n"
    "+x = 2\n"
    "+y = 3\n"
    " print(x)\n"
    " \n"
    "@@ -20,2 +21,3 @@ def g():\n"
    "     a = 1\n"
    "+    b = 2\n"
    "     return a\n"
)


def test_new_side_numbers_and_anchorable_lines() -> None:
    p = parse_patch("a.py", HUNKS)
    assert p.added == {2: "x = 2", 3: "y = 3", 22: "    b = 2"}
    assert p.right_lines == {1, 2, 3, 4, 5, 21, 22, 23}
    assert 2 in p.left_lines and 22 not in p.left_lines
    assert "     2 +x = 2" in p.numbered
    assert "-x = 1" in p.numbered


def test_comments_outside_the_hunks_are_not_anchored() -> None:
    p = parse_patch("a.py", HUNKS)
    good = Comment(line=22, body="ok")
    context = Comment(line=4, body="context line is fine")
    outside = Comment(line=10, body="between hunks")
    negative = Comment(line=-3, body="nonsense")
    left_removed = Comment(line=2, side="LEFT", body="removed line")
    left_bad = Comment(line=22, side="LEFT", body="no such old line")
    bad_range = Comment(line=22, start_line=5, body="spans two hunks")
    anchored, stray = split_anchored([good, context, outside, negative, left_removed, left_bad, bad_range], p)
    assert anchored == [good, context, left_removed]
    assert stray == [outside, negative, left_bad, bad_range]
    summary = fold_into_summary("Looks fine.", stray)
    assert "between hunks" in summary and "line 10" in summary and summary.startswith("Looks fine.")


def test_garbage_patch_does_not_crash() -> None:
    p = parse_patch("x", "this is not a diff\n\x00\xff")
    assert p.added == {} and p.right_lines == frozenset()


def test_split_git_diff() -> None:
    diff = "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n" + HUNKS
    parts = split_git_diff(diff)
    assert list(parts) == ["a.py"]
    assert parse_patch("a.py", parts["a.py"]).added[22] == "    b = 2"
