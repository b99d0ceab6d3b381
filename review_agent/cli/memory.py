"""`prefs` and `learn`: what the reviewer knows across reviews."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from review_agent.cli.common import (
    _fail,
    _run,
    _settings,
    app,
    prefs_app,
)
from review_agent.wording import plural

if TYPE_CHECKING:
    from review_agent.memory_admin import Memory


@contextlib.contextmanager
def _memory(*, read_only: bool = False) -> Iterator[Memory]:
    from review_agent.memory_admin import open_memory

    settings = _settings()
    cm = open_memory(settings, read_only=read_only)
    memory = _run(cm.__enter__)
    try:
        yield memory
    finally:
        cm.__exit__(None, None, None)


def _parse_value(value: str) -> object:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _scope(user: str | None, repo: str | None) -> tuple[str, str]:
    if bool(user) == bool(repo):
        _fail("name exactly one of --user LOGIN or --repo OWNER/REPO", 2)
    return ("user", user) if user else ("repo", repo)  # type: ignore[return-value]


OrgOpt = Annotated[
    str | None, typer.Option("--org", help="An organisation's defaults (under its users' own).")
]
OptUser = Annotated[str | None, typer.Option("--user", help="The user whose memory this is.")]


def _owner(user: str | None, org: str | None) -> tuple[str, str]:
    if bool(user) == bool(org):
        _fail("name exactly one of --user LOGIN or --org ORG", 2)
    return ("user", user) if user else ("org", org)  # type: ignore[return-value]


@prefs_app.command("set")
def prefs_set(
    key: str,
    value: Annotated[str, typer.Argument(help="A string, or JSON (a list, a number, true).")],
    user: OptUser = None,
    org: OrgOpt = None,
) -> None:
    """Set one preference, e.g. `prefs set style "prefer early returns" --user alice`."""
    scope, name = _owner(user, org)
    with _memory() as m:
        _run(m.preferences.set, name, key, _parse_value(value), scope=scope)
    typer.echo(f"{name}: {key} set")


@prefs_app.command("get")
def prefs_get(key: str, user: OptUser = None, org: OrgOpt = None) -> None:
    """Print one preference."""
    scope, name = _owner(user, org)
    with _memory(read_only=True) as m:
        value = _run(m.preferences.get, name, key, scope=scope)
    if value is None:
        _fail(f"{name} has no preference {key!r}", 2)
    typer.echo(value if isinstance(value, str) else json.dumps(value))


@prefs_app.command("list")
def prefs_list(user: OptUser = None, org: OrgOpt = None) -> None:
    """List the preferences (and a user's learnings)."""
    scope, name = _owner(user, org)
    with _memory(read_only=True) as m:
        values = _run(m.preferences.all, name, scope=scope)
        learned = _run(m.learnings.list, ("user", name)) if scope == "user" else []
    if not values and not learned:
        typer.echo(f"{name} has no preferences")
    for k, v in values.items():
        typer.echo(f"{k} = {v if isinstance(v, str) else json.dumps(v)}")
    for lr in learned:
        typer.echo(f"learning {lr.key}: {lr.text}")


@prefs_app.command("forget")
def prefs_forget(
    key: Annotated[
        str | None, typer.Argument(help="One key (or learning id); everything of theirs if omitted.")
    ] = None,
    user: OptUser = None,
    org: OrgOpt = None,
) -> None:
    """Delete one preference or learning, or all of a user's (or organisation's) memory."""
    scope, name = _owner(user, org)
    with _memory() as m:
        n = _run(m.preferences.forget, name, key, scope=scope)
        if scope == "user":
            n += _run(m.learnings.forget, ("user", name), key)
    typer.echo(f"{name}: {plural(n, 'item')} deleted")


@prefs_app.command("export")
def prefs_export(
    user: Annotated[str | None, typer.Option("--user")] = None,
    repo: Annotated[str | None, typer.Option("--repo")] = None,
    everything: Annotated[bool, typer.Option("--all", help="Every user's and repository's memory.")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
) -> None:
    """Export memory as JSON (to move it to another backend with `prefs import`)."""
    from review_agent.memory_admin import export_memory, known_scopes

    with _memory(read_only=True) as m:
        scopes = _run(known_scopes, m) if everything else [_scope(user, repo)]
        text = json.dumps(_run(export_memory, m, scopes), indent=2, ensure_ascii=False)
    if output:
        output.write_text(text + "\n", encoding="utf-8")
    else:
        typer.echo(text)


@prefs_app.command("import")
def prefs_import(path: Annotated[Path, typer.Argument(help="A file written by `prefs export`.")]) -> None:
    """Import memory exported by `prefs export` (idempotent)."""
    from review_agent.memory_admin import import_memory

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        _fail(f"cannot read {path}: {exc}", 2)
    with _memory() as m:
        n_prefs, n_learn = _run(import_memory, m, data)
    typer.echo(f"imported {plural(n_prefs, 'preference')} and {plural(n_learn, 'learning')}")


@app.command()
def learn(
    text: Annotated[
        str, typer.Argument(help='A short rule, e.g. "don\'t flag missing docstrings in tests".')
    ],
    user: Annotated[str | None, typer.Option("--user", help="Whose rule this is.")] = None,
    repo: Annotated[str | None, typer.Option("--repo", help="A repository's rule (OWNER/REPO).")] = None,
) -> None:
    """Teach the reviewer a rule; it is recalled for related files in later reviews."""
    scope = _scope(user, repo)
    with _memory() as m:
        lr = _run(m.learnings.add, scope, text, {"by": user or "cli", "via": "review-agent learn"})
    typer.echo(f"learned ({scope[0]} {scope[1]}): {lr.text}  [id {lr.key}]")
