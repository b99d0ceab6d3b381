"""GitHub App installation auth, end to end: the real PyGithub against the fake GitHub, which
verifies the App's JWT with its public key, mints installation tokens, and scopes them to the
installation's repositories. The RSA key is made here, as GitHub would issue one."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from review_agent.config import Settings
from review_agent.errors import BadInput
from review_agent.github import (
    InstallationCredentials,
    TokenCredentials,
    app_credentials,
    app_credentials_from_env,
    installation_id_for,
)
from review_agent.publish.github import GitHubPublisher
from review_agent.service import ReviewOptions, run_review
from review_agent.sources.github import GitHubSource
from tests.fakes.github_server import FakeGitHub, added_file_patch, make_file

APP_ID = 424242
TOKEN = "ghp_fake_user_token_0123456789"
BOT = "review-agent[bot]"
LINES = ["def f(x):", "<<<<<<< HEAD", "    return x", "=======", "    return -x", ">>>>>>> other"]


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey) -> str:
    """The private key as GitHub issues it: PKCS#1 PEM, unencrypted."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def _public(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture(scope="module")
def app_key() -> rsa.RSAPrivateKey:
    return _key()


@pytest.fixture
def key_file(app_key: rsa.RSAPrivateKey, tmp_path: Path) -> Path:
    path = tmp_path / "review-agent.private-key.pem"
    path.write_text(_pem(app_key))
    return path


@pytest.fixture
def gh(app_key: rsa.RSAPrivateKey) -> Iterator[FakeGitHub]:
    with FakeGitHub(token=TOKEN, login="review-bot") as fake:
        fake.add_app(APP_ID, _public(app_key))
        files = [
            make_file("src/app.py", added_file_patch(LINES), status="added", content="\n".join(LINES) + "\n")
        ]
        fake.add_pr("acme", "shop", 7, files, head_sha="a" * 40, base_sha="b" * 40, author="alice")
        fake.add_pr("rival", "secret", 1, files, head_sha="c" * 40, base_sha="d" * 40, private=True)
        fake.add_pr("rival", "open", 2, files, head_sha="e" * 40, base_sha="f" * 40)
        fake.add_installation(APP_ID, "rival", ["rival/secret", "rival/open"])
        yield fake


def _installation(gh: FakeGitHub, key_file: Path) -> InstallationCredentials:
    app = app_credentials_from_env(
        {"GITHUB_APP_ID": str(APP_ID), "GITHUB_APP_PRIVATE_KEY_PATH": str(key_file)}
    )
    assert app is not None
    return InstallationCredentials(app, gh.add_installation(APP_ID, "acme", ["acme/shop"]))


def _source(gh: FakeGitHub, url: str, credentials: Any) -> GitHubSource:
    return GitHubSource(url, api_url=gh.url, credentials=credentials, retries=1, backoff=0.001)


@pytest.mark.parametrize("mode", ["token", "installation"])
def test_a_review_is_posted_as_a_token_or_as_an_app_installation(
    gh: FakeGitHub,
    key_file: Path,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    mode: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("GITHUB_API_URL", gh.url)
    creds = _installation(gh, key_file) if mode == "installation" else None
    if mode == "token":
        monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    url = f"{gh.root}/acme/shop/pull/7"
    report = run_review(ReviewOptions(target=url, post=True, github=creds), Settings())

    (review,) = gh.reviews("acme", "shop", 7)
    author = BOT if mode == "installation" else "review-bot"
    assert review["user"]["login"] == author
    assert report.posted is not None and report.posted["review_id"] == review["id"]
    assert any("conflict" in c["body"].lower() for c in gh.review_comments("acme", "shop", 7))
    # who posted what is already there: a user's token says who it is; an installation is not
    # asked (GitHub answers 403 there), its posts are a bot's
    assert gh.count("GET", "/user") == (1 if mode == "token" else 0)
    on_repo = [r for r in gh.requests if r.route.startswith("/repos/")]
    assert on_repo and all(r.login == author for r in on_repo)
    if mode == "token":
        assert gh.minted_tokens == []
        return

    # the App's JWT was used for the token only; one token served the whole review
    assert [r.route for r in gh.requests if r.route.startswith("/app")] == [
        f"/app/installations/{creds.installation_id}/access_tokens"  # type: ignore[union-attr]
    ]
    assert len(gh.minted_tokens) == 1
    token = gh.minted_tokens[0]
    # GitHub refuses GET /user to an installation token: nothing of ours may depend on it
    assert requests.get(f"{gh.url}/user", headers={"Authorization": f"token {token}"}).status_code == 403
    # never stored, never logged: not in the database, the log or the report
    stored = b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())
    pem = key_file.read_text()
    for secret in (token, pem.splitlines()[1]):
        assert secret.encode() not in stored
        assert secret not in caplog.text and secret not in report.model_dump_json()

    # a rerun (another process: nothing carried over) mints a fresh token and posts nothing
    again = run_review(
        ReviewOptions(
            target=url, post=True, github=InstallationCredentials(creds.app, creds.installation_id)
        ),  # type: ignore[union-attr]
        Settings(),
    )
    assert len(gh.minted_tokens) == 2 and len(gh.reviews("acme", "shop", 7)) == 1
    assert again.posted == report.posted


def test_an_installation_token_is_minted_again_before_it_expires(gh: FakeGitHub, key_file: Path) -> None:
    gh.installation_token_ttl = 15  # inside PyGithub's 20 s margin: every use needs a new one
    source = _source(gh, f"{gh.root}/acme/shop/pull/7", _installation(gh, key_file))
    assert [f.path for f in source.list_files()] == ["src/app.py"]
    assert source.get_content("src/app.py") is not None
    assert len(gh.minted_tokens) == 3  # the PR, its files, the content: each with a fresh token
    assert all(r.status == 200 for r in gh.requests if r.route.startswith("/repos/"))


def test_an_installation_sees_only_its_own_repositories(gh: FakeGitHub, key_file: Path) -> None:
    creds = _installation(gh, key_file)
    # another installation's private repository does not exist for this token
    with pytest.raises(BadInput, match="rival/secret#1 not found"):
        _source(gh, f"{gh.root}/rival/secret/pull/1", creds).resolve()
    # another installation's public repository can be read, not written to
    source = _source(gh, f"{gh.root}/rival/open/pull/2", creds)
    assert source.resolve().head_sha == "e" * 40
    from review_agent.publish.report import ReviewReport

    report = ReviewReport(target="x", thread_id="t", head_sha="e" * 40, files_total=0)
    result = GitHubPublisher(source, recheck_delay=0).publish(report)
    assert result.read_only and gh.reviews("rival", "open", 2) == []
    # and GitHub says which installation covers a repository
    assert installation_id_for(creds.app, gh.url, "acme", "shop") == creds.installation_id
    with pytest.raises(BadInput, match="not installed on nobody/none"):
        installation_id_for(creds.app, gh.url, "nobody", "none")


def test_bad_app_credentials_are_one_line_bad_input(gh: FakeGitHub, key_file: Path, tmp_path: Path) -> None:
    url = f"{gh.root}/acme/shop/pull/7"
    good = _installation(gh, key_file)
    # a key that is not the App's: GitHub refuses the JWT
    wrong = app_credentials(APP_ID, private_key=_pem(_key()))
    with pytest.raises(BadInput, match=f"rejected the JWT of the GitHub App {APP_ID}") as info:
        _source(gh, url, InstallationCredentials(wrong, good.installation_id)).resolve()
    assert "PRIVATE KEY" not in str(info.value)
    # an installation that does not exist (the App was uninstalled)
    with pytest.raises(BadInput, match="no installation 999999 of the GitHub App"):
        _source(gh, url, InstallationCredentials(good.app, 999999)).resolve()
    # the key given as text, with its line breaks written as "\n" (a one-line variable)
    pem = key_file.read_text()
    flat = app_credentials(APP_ID, private_key=pem.strip().replace("\n", "\\n"))
    assert _source(gh, url, InstallationCredentials(flat, good.installation_id)).resolve().number == 7
    # settings that cannot work are refused before any request
    requests_before = len(gh.requests)
    with pytest.raises(BadInput, match=r"GITHUB_APP_PRIVATE_KEY_PATH .*cannot read"):
        app_credentials(APP_ID, private_key_path=tmp_path / "missing.pem")
    (tmp_path / "not.pem").write_text("hello")
    with pytest.raises(BadInput, match="not a PEM private key"):
        app_credentials(APP_ID, private_key_path=tmp_path / "not.pem")
    with pytest.raises(BadInput, match="GITHUB_APP_ID must be the App's numeric id"):
        app_credentials("my-app", private_key=pem)
    with pytest.raises(BadInput, match="needs GITHUB_APP_PRIVATE_KEY_PATH"):
        app_credentials_from_env({"GITHUB_APP_ID": str(APP_ID)})
    assert app_credentials_from_env({}) is None
    assert len(gh.requests) == requests_before
    assert "BEGIN" not in repr(good) and pem.splitlines()[1] not in repr(flat)
    assert "ghp_x" not in repr(TokenCredentials("ghp_x"))
