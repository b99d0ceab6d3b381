"""Markers that cannot drift: a test that reaches a service must carry the service's marker.

The unit tier (``-m "not slow and not postgres and not redis"``) promises to need no service and
to be quick. A marker forgotten on one test breaks that promise quietly: the tier still passes on
a machine where Postgres happens to run. So the helpers that reach a service call ``require``,
and a test without the marker fails at once, naming the marker to add, wherever it runs:

* ``tests/pg.py`` (a database of the test's own) requires ``postgres``;
* ``tests/services.py`` (a ``redis-server`` of the test's own) requires ``redis``;
* ``tests/crash.py`` (SIGKILL of a real process) requires ``slow``.

``tests/conftest.py`` sets the running test, and marks tests by the fixtures they use, so most
tests never name a marker themselves. Outside a test (``bench/``, a fake run standalone) nothing
is checked.
"""

from __future__ import annotations

import pytest

current: pytest.Item | None = None  # the test running now (set by tests/conftest.py)


def require(marker: str, what: str) -> None:
    """Fail the running test unless it carries ``marker``; ``what`` says what it reached."""
    item = current
    if item is None or item.get_closest_marker(marker) is not None:
        return
    pytest.fail(
        f"{item.nodeid} {what} but is not marked `{marker}`: add @pytest.mark.{marker} "
        f"(or a fixture that implies it, see tests/conftest.py) so that the unit tier stays "
        "free of services and quick",
        pytrace=False,
    )
