"""Routes of the fake GitHub for who is calling: ``/user``, ``/rate_limit``, and the GitHub App
endpoints (``/app``, its installations, installation tokens, ``/repos/{o}/{r}/installation``,
``/installation/repositories``)."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Any

from tests.fakes.github.base import FakeBase
from tests.fakes.github.state import FakeApp, FakeInstallation, _Context, _HTTPError, _Response


class AppRoutes(FakeBase):
    def _get_user(self, ctx: _Context) -> _Response:
        if ctx.installation is not None:  # GitHub: an installation is not a user
            raise _HTTPError(403, "Resource not accessible by integration")
        if ctx.login is None:
            raise _HTTPError(401, "Requires authentication")
        return _Response(200, self._user_json(ctx.login))

    def _app_of(self, ctx: _Context) -> FakeApp:
        assert ctx.app_id is not None
        with self._lock:
            return self._apps[ctx.app_id]

    def _installation_json(self, inst: FakeInstallation) -> dict[str, Any]:
        app = self._apps[inst.app_id]
        return {
            "id": inst.id,
            "account": self._user_json(inst.account),
            "app_id": int(inst.app_id),
            "app_slug": app.slug,
            "target_id": 1,
            "target_type": "Organization",
            "repository_selection": "all" if inst.repos is None else "selected",
            "permissions": {"pull_requests": "write" if inst.can_write else "read", "contents": "read"},
            "events": ["pull_request"],
            "access_tokens_url": f"{self.url}/app/installations/{inst.id}/access_tokens",
            "repositories_url": f"{self.url}/installation/repositories",
            "html_url": f"{self.root}/organizations/{inst.account}/settings/installations/{inst.id}",
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z",
            "suspended_at": None,
        }

    def _app_installation(self, ctx: _Context, installation_id: str) -> FakeInstallation:
        app = self._app_of(ctx)
        with self._lock:
            inst = self._installations.get(int(installation_id))
        if inst is None or inst.app_id != app.app_id:
            raise _HTTPError(404, "Not Found")
        return inst

    def _get_app(self, ctx: _Context) -> _Response:
        app = self._app_of(ctx)
        return _Response(
            200,
            {
                "id": int(app.app_id),
                "slug": app.slug,
                "node_id": f"A_{app.app_id}",
                "name": app.slug,
                "owner": self._user_json("acme"),
                "description": "",
                "external_url": self.root,
                "html_url": f"{self.root}/apps/{app.slug}",
                "permissions": {"pull_requests": "write", "contents": "read"},
                "events": ["pull_request"],
                "created_at": "2024-01-01T00:00:00Z",
                "updated_at": "2024-01-01T00:00:00Z",
            },
        )

    def _get_app_installations(self, ctx: _Context) -> _Response:
        app = self._app_of(ctx)
        with self._lock:
            mine = [i for i in self._installations.values() if i.app_id == app.app_id]
            items = [self._installation_json(i) for i in mine]
        return self._paginate(ctx, items)

    def _get_app_installation(self, ctx: _Context, installation_id: str) -> _Response:
        return _Response(200, self._installation_json(self._app_installation(ctx, installation_id)))

    def _post_access_token(self, ctx: _Context, installation_id: str) -> _Response:
        inst = self._app_installation(ctx, installation_id)
        token = "ghs_" + secrets.token_hex(18)
        with self._lock:
            expires = time.time() + self.installation_token_ttl
            self._installation_tokens[token] = (inst.id, expires)
            self.minted_tokens.append(token)
        body = self._installation_json(inst)
        return _Response(
            201,
            {
                "token": token,
                "expires_at": datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "permissions": body["permissions"],
                "repository_selection": body["repository_selection"],
            },
        )

    def _get_repo_installation(self, ctx: _Context, owner: str, repo: str) -> _Response:
        app = self._app_of(ctx)
        with self._lock:
            found = [
                i for i in self._installations.values() if i.app_id == app.app_id and i.covers(owner, repo)
            ]
            known = (owner.lower(), repo.lower()) in self._repos
        if not found or not known:
            raise _HTTPError(404, "Not Found")
        return _Response(200, self._installation_json(found[0]))

    def _get_installation_repositories(self, ctx: _Context) -> _Response:
        if ctx.installation is None:
            raise _HTTPError(403, "Resource not accessible by integration")
        with self._lock:
            inst = self._installations[ctx.installation]
            repos = [self._repo_json(r) for r in self._repos.values() if inst.covers(r.owner, r.name)]
        page = self._paginate(ctx, repos)
        page.body = {"total_count": len(repos), "repository_selection": "selected", "repositories": page.body}
        return page

    def _get_rate_limit(self, ctx: _Context) -> _Response:
        with self._lock:
            core = {
                "limit": self._rate_limit,
                "remaining": max(self._rate_remaining, 0),
                "used": self._rate_limit - max(self._rate_remaining, 0),
                "reset": self._rate_reset,
            }
        other = {"limit": 30, "remaining": 30, "used": 0, "reset": core["reset"]}
        return _Response(200, {"resources": {"core": core, "search": other, "graphql": core}, "rate": core})
