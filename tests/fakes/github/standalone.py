"""The fake GitHub run on its own (``python -m tests.fakes.github_server --config pr.json``), for
tests that start the CLI in another process or container."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from collections.abc import Mapping
from typing import Any

from tests.fakes.github.builders import make_file
from tests.fakes.github.server import FakeGitHub


def load_config(fake: FakeGitHub, config: Mapping[str, Any]) -> None:
    """Set a fake up from JSON: ``{"prs": [{"owner", "repo", "number", "files": [...], ...}]}``.

    A file entry is either a full listing entry (``filename``, ``status``, ``patch``, ``sha``, …)
    or ``{"path", "patch", "content"?, "status"?}`` handed to ``make_file``.
    """
    for token in config.get("tokens", []):
        fake.add_token(token["token"], token["login"], can_write=token.get("can_write", True))
    for spec in config.get("prs", []):
        spec = dict(spec)
        files = []
        for f in spec.pop("files", []):
            if "filename" in f:
                files.append(f)
            else:
                f = dict(f)
                files.append(make_file(f.pop("path"), f.pop("patch", None), **f))
        fake.add_pr(spec.pop("owner"), spec.pop("repo"), int(spec.pop("number")), files, **spec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a fake GitHub REST API on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--config", help="JSON file: {token?, login?, tokens?, prs: [...]}")
    parser.add_argument("--token", default=None, help="the valid token (default: from config)")
    args = parser.parse_args(argv)
    config: dict[str, Any] = {}
    if args.config:
        with open(args.config, encoding="utf-8") as fh:
            config = json.load(fh)
    fake = FakeGitHub(
        token=args.token or config.get("token", "test-token"),
        login=config.get("login", "review-bot"),
        host=args.host,
        port=args.port,
    )
    load_config(fake, config)
    fake.start()
    print(fake.url, flush=True)  # the first line of output is the API URL, for the caller
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    fake.stop()
    return 0
