"""Terminal rendering of a run's progress: a rich progress bar on a terminal, plain lines when
the output is a pipe or a CI log (where a redrawn bar turns into noise). File names and messages
are shown through ``printable`` (a name can hold an escape sequence or a newline) and never read
as rich markup."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from review_agent.textsafe import printable
from review_agent.wording import plural


class PlainListener:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.total = 0
        self.done = 0

    def begin(self, *, total: int, done: int, resumed: bool, offline: bool, reviewer: str) -> None:
        if reviewer:
            mode = (
                "offline: built-in reviewer (no OPENAI_API_KEY or OPENAI_BASE_URL)"
                if offline
                else f"reviewer {printable(reviewer)}"
            )
            self.console.print(mode, highlight=False, markup=False)
        if total:
            self.total, self.done = total, done

    def file_done(self, path: str, *, reused: bool, comments: int) -> None:
        self.done += 1
        tag = " (already reviewed)" if reused else ""
        self.console.print(
            f"[{self.done}/{self.total}] {printable(path)}: {plural(comments, 'comment')}{tag}",
            highlight=False,
            markup=False,
        )

    def info(self, message: str) -> None:
        self.console.print(printable(message), highlight=False, markup=False)

    def close(self) -> None:
        pass


class RichListener(PlainListener):
    def __init__(self, console: Console) -> None:
        super().__init__(console)
        self.progress = Progress(
            TextColumn("[bold]reviewing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}", markup=False),
            console=console,
            transient=False,
        )
        self.task: int | None = None

    def begin(self, *, total: int, done: int, resumed: bool, offline: bool, reviewer: str) -> None:
        super().begin(total=total, done=done, resumed=resumed, offline=offline, reviewer=reviewer)
        if total and self.task is None:
            self.progress.start()
            self.task = self.progress.add_task("", total=total, completed=done)

    def file_done(self, path: str, *, reused: bool, comments: int) -> None:
        self.done += 1
        if self.task is not None:
            self.progress.update(self.task, advance=1, description=printable(path))
        else:
            super().file_done(path, reused=reused, comments=comments)

    def close(self) -> None:
        if self.task is not None:
            self.progress.stop()


def make_listener(console: Console) -> PlainListener:
    return RichListener(console) if console.is_terminal else PlainListener(console)


def stderr_console() -> Console:
    return Console(stderr=True, soft_wrap=True)
