"""The checkpoint serializer: LangGraph's own, locked down.

Our state holds only plain data (dicts, lists, strings, numbers), so a checkpoint never needs to
construct an object on load. LangGraph's ``JsonPlusSerializer`` by default imports and calls any
constructor named in a msgpack row (with a warning) — a tampered row could make us run code. Here
pickle is off, only LangGraph's safe built-in types are allowed, and a row naming anything else
is refused with a clear error instead of being half-loaded: resuming from a state we did not
write would be worse than stopping.
"""

from __future__ import annotations

import threading
from typing import Any

from langgraph.checkpoint.serde.event_hooks import SerdeEvent, register_serde_event_listener
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from review_agent.errors import CorruptState

_blocked = threading.local()


def _on_serde_event(event: SerdeEvent) -> None:
    if event.get("kind") in ("msgpack_blocked", "msgpack_method_blocked"):
        found = getattr(_blocked, "found", None)
        if found is not None:
            found.append(f"{event.get('module')}.{event.get('name')}")


register_serde_event_listener(_on_serde_event)

ACCEPTED_TYPES = ("null", "bytes", "bytearray", "msgpack", "json")


class StrictSerializer(JsonPlusSerializer):
    def __init__(self) -> None:
        super().__init__(pickle_fallback=False, allowed_json_modules=None, allowed_msgpack_modules=None)

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        kind = data[0]
        if kind not in ACCEPTED_TYPES:
            raise CorruptState(
                f"a checkpoint holds data of type {kind!r}, which review-agent never writes: refusing "
                "to load it (tampered or foreign row); rerun with --fresh to start this review over"
            )
        _blocked.found = []
        try:
            value = super().loads_typed(data)
            found = list(_blocked.found)
        finally:
            _blocked.found = None
        if found:
            raise CorruptState(
                f"a checkpoint names {', '.join(sorted(set(found)))}, which review-agent never writes: "
                "refusing to load it (tampered or foreign row); rerun with --fresh to start over"
            )
        return value
