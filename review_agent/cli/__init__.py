"""The command line: parse, build settings, call the service, render. Nothing else lives here.

One module per group of commands; importing them registers their commands on ``app``, in the
order ``--help`` lists them: reviewing first, then memory, then running the service.
"""

# isort: off
from review_agent.cli import review  # noqa: F401  (registers review, status, history)
from review_agent.cli import memory  # noqa: F401  (registers prefs, learn)
from review_agent.cli import admin  # noqa: F401  (registers db, serve, worker, action)

# isort: on
from review_agent.cli.common import _graceful_stop, _review_event, app


def main() -> None:
    app()


__all__ = ["_graceful_stop", "_review_event", "app", "main"]
