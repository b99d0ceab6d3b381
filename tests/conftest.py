"""Shared fixtures. Real services only: SQLite files, the machine's Postgres and Redis, and local
HTTP servers standing in for GitHub and the model provider (docs/architecture.md, "Testing")."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import tiers
from tests.fakes.openai_server import FakeOpenAI
from tests.gitrepo import make_repo
from tests.services import PrivateRedis

ENV_VARS = (
    "DATABASE_URL",
    "REDIS_URL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "REVIEW_AGENT_MODEL",
    "GITHUB_TOKEN",
    "GITHUB_API_URL",
    "REVIEW_AGENT_HOME",
)


# Fixtures that start or use a redis-server: a test that uses one (directly or through another
# fixture) is marked `redis` here, so the marker cannot be forgotten. Postgres is marked where
# the database is made: `backend_env`'s postgres parameter carries it, and `tests/pg.py` refuses
# to create a database for a test without it (tests/tiers.py).
REDIS_FIXTURES = frozenset({"session_redis", "redis_url", "private_redis"})


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if REDIS_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.redis)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Tell tests/tiers.py which test runs (setup, call and teardown), to check its markers."""
    tiers.current = item
    try:
        yield
    finally:
        tiers.current = None


def _developer_setting(var: str) -> bool:
    """A setting of the developer's own shell that must not reach a test (the test suite's own
    REVIEW_AGENT_TEST_* knobs excepted)."""
    if var in ENV_VARS:
        return True
    return var.startswith("REVIEW_AGENT_") and not var.startswith("REVIEW_AGENT_TEST_")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test sees the developer's own configuration, or a .env file of the working directory."""
    for var in list(os.environ):
        if _developer_setting(var):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture(scope="session")
def session_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    """One private redis-server for the session: the suite never touches a Redis it did not start."""
    server = PrivateRedis(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def redis_url(session_redis: PrivateRedis) -> Iterator[str]:
    """A Redis database of this test's own (on the session's private server), empty before and
    after the test."""
    with session_redis.client() as c:
        c.flushdb()
    yield session_redis.url
    with session_redis.client() as c:
        c.flushdb()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[Callable[..., PrivateRedis]]:
    """Start redis-servers of the test's own, to flush, pause, kill and restart; all killed after."""
    servers: list[PrivateRedis] = []

    def start(**kwargs: Any) -> PrivateRedis:
        server = PrivateRedis(tmp_path / f"redis{len(servers)}", **kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.kill()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    monkeypatch.setenv("REVIEW_AGENT_HOME", str(h))
    return h


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path, files=8)


def cli_env(**extra: str) -> dict[str, str]:
    """Environment for a `review-agent` subprocess: this interpreter's bin first on PATH."""
    env = {k: v for k, v in os.environ.items() if not _developer_setting(k)}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(require_api_key="sk-test-key") as server:
        yield server


@pytest.fixture
def model_env(fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {
        "OPENAI_API_KEY": "sk-test-key",
        "OPENAI_BASE_URL": fake_openai.base_url,
        "REVIEW_AGENT_MODEL": "fake-model",
        "REVIEW_AGENT_MODEL_RETRIES": "1",
        "REVIEW_AGENT_MODEL_TIMEOUT": "10",
        "REVIEW_AGENT_RETRY_INTERVAL": "0.1",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Storage settings for each backend: the SQLite default, and a fresh Postgres database."""
    env = {"REVIEW_AGENT_HOME": str(tmp_path / "home")}
    if request.param == "sqlite":
        yield env
        return
    from tests.pg import temp_database

    with temp_database("ra_mem") as url:
        yield {**env, "DATABASE_URL": url}
