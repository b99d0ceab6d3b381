"""Style preferences in the cross-thread store: a user's (``("user", LOGIN, "preferences")``) and
an organisation's defaults (``("org", ORG, "preferences")``), which a user's own override.

Store namespace labels may not contain dots, and logins may be e-mail addresses, so labels are
percent-escaped (readable, reversible, and never a digest a person cannot recognise).

Every value goes into the prompts of its user, so ``set`` refuses credentials, empty or
unprintable keys and oversized values (``storage/admission.py``) whoever calls it.
"""

from __future__ import annotations

from typing import Any

from langgraph.store.base import BaseStore

from review_agent.storage.admission import check_key, check_name, check_value


def label(text: str) -> str:
    return text.replace("%", "%25").replace(".", "%2E")


def user_namespace(login: str, kind: str = "preferences", scope: str = "user") -> tuple[str, ...]:
    if scope not in ("user", "org"):
        raise ValueError(f"unknown preference scope {scope!r}")
    return (scope, label(login), kind)


class Preferences:
    def __init__(self, store: BaseStore) -> None:
        self.store = store

    def check(self, login: str, key: str, value: Any, *, scope: str = "user") -> None:
        """Raise BadInput if ``set`` would refuse this."""
        user_namespace(login, scope=scope)
        check_name("organisation" if scope == "org" else "user", login)
        check_value(check_key(key), value)

    def set(self, login: str, key: str, value: Any, *, scope: str = "user") -> None:
        self.check(login, key, value, scope=scope)
        self.store.put(user_namespace(login, scope=scope), key, {"value": value}, index=False)

    def get(self, login: str, key: str, *, scope: str = "user") -> Any | None:
        item = self.store.get(user_namespace(login, scope=scope), key)
        return item.value.get("value") if item else None

    def all(self, login: str, *, scope: str = "user") -> dict[str, Any]:
        items = self.store.search(user_namespace(login, scope=scope), limit=1000)
        return {i.key: i.value.get("value") for i in sorted(items, key=lambda i: i.key)}

    def forget(self, login: str, key: str | None = None, *, scope: str = "user") -> int:
        ns = user_namespace(login, scope=scope)
        keys = [key] if key else list(self.all(login, scope=scope))
        n = 0
        for k in keys:
            if self.store.get(ns, k) is not None:
                self.store.delete(ns, k)
                n += 1
        return n
