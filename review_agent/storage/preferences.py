"""A user's style preferences in the cross-thread store: namespace ``("user", LOGIN, "preferences")``.

Store namespace labels may not contain dots, and logins may be e-mail addresses, so labels are
percent-escaped (readable, reversible, and never a digest a person cannot recognise).
"""

from __future__ import annotations

from typing import Any

from langgraph.store.base import BaseStore


def label(text: str) -> str:
    return text.replace("%", "%25").replace(".", "%2E")


def user_namespace(login: str, kind: str = "preferences") -> tuple[str, ...]:
    return ("user", label(login), kind)


class Preferences:
    def __init__(self, store: BaseStore) -> None:
        self.store = store

    def set(self, login: str, key: str, value: Any) -> None:
        self.store.put(user_namespace(login), key, {"value": value}, index=False)

    def get(self, login: str, key: str) -> Any | None:
        item = self.store.get(user_namespace(login), key)
        return item.value.get("value") if item else None

    def all(self, login: str) -> dict[str, Any]:
        items = self.store.search(user_namespace(login), limit=1000)
        return {i.key: i.value.get("value") for i in sorted(items, key=lambda i: i.key)}

    def forget(self, login: str, key: str | None = None) -> int:
        keys = [key] if key else list(self.all(login))
        n = 0
        for k in keys:
            if self.store.get(user_namespace(login), k) is not None:
                self.store.delete(user_namespace(login), k)
                n += 1
        return n
