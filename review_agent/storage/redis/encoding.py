"""How a checkpoint, its metadata and its pending writes map onto the fields of a Redis hash.

Why this module: the cache must return exactly what the durable saver would, so the fields are
built from the same serde as the durable saver's, normalised the way that saver normalises
(`Profile`), and read back into the same `CheckpointTuple`. The field names are listed in the
package docstring; every serialised value is ``[header JSON]`` + NUL + serde bytes.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_metadata,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.types import TASKS

__all__ = [
    "Profile",
    "PutPlan",
    "WritesFields",
    "decode_entry",
    "escape",
    "key_names",
    "plan_put",
    "profile_for",
    "refill_fields",
    "writes_fields",
]


def escape(value: str) -> str:
    """Escape a thread id or namespace so that ``:`` can separate them in key names."""
    return value.replace("%", "%25").replace(":", "%3A")


@functools.lru_cache(maxsize=1024)
def key_names(prefix: str, thread_id: str, ns: str) -> tuple[str, str, str]:
    """The epoch key, the thread's index and the namespace's entry."""
    tid = escape(thread_id)
    return f"{prefix}epoch", f"{prefix}t:{tid}", f"{prefix}c:{tid}:{escape(ns)}"


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _pack(header: list[Any], payload: bytes) -> bytes:
    # JSON never contains a raw NUL (control characters are escaped), so the first NUL ends the
    # header whatever the payload holds.
    return _json(header) + b"\0" + payload


def _unpack(raw: bytes) -> tuple[list[Any], bytes]:
    head, _, payload = raw.partition(b"\0")
    return json.loads(head), payload


@functools.lru_cache(maxsize=4096)
def _jstr(value: str) -> bytes:
    """A string as JSON, for the pieces of headers that repeat (channels, serde types, ids)."""
    return json.dumps(value).encode()


@functools.lru_cache(maxsize=256)
def _typed_head(v_type: str) -> bytes:
    """``_pack([v_type], ...)``'s header, formatted once per serde type (there are a handful)."""
    return _json([v_type]) + b"\0"


@functools.lru_cache(maxsize=4096)
def _channel_names(channel: str) -> tuple[bytes, bytes]:
    name = channel.encode()
    return b"v:" + name, b"V:" + name


@functools.lru_cache(maxsize=4096, typed=True)  # typed: 1, 1.0 and True encode differently
def version_json(version: Any) -> str:
    """A channel version as stored in its ``V:`` field (cached: most are unchanged every step)."""
    return _json(version).decode()


@functools.lru_cache(maxsize=4096, typed=True)
def _version_bytes(version: Any) -> bytes:
    return version_json(version).encode()


def is_primitive(value: Any) -> bool:
    """Values PostgresSaver stores inline in the checkpoint row rather than as versioned blobs."""
    return value is None or isinstance(value, str | int | float | bool)


# -- what each durable saver does to a checkpoint ---------------------------------------------


@dataclass(frozen=True)
class Profile:
    """What a durable saver does to a checkpoint on the way in and out, where savers differ.

    `metadata` is None for savers not modelled here (InMemorySaver, ShallowPostgresSaver, third
    party): their puts invalidate, and only refills - copies of the saver's own answers - are
    cached, which is exact whatever the saver does.
    """

    metadata: Callable[[RunnableConfig, CheckpointMetadata], Any] | None
    echoes_config: bool
    """get_tuple with a checkpoint_id returns the caller's config object itself."""


def _sqlite_metadata(config: RunnableConfig, metadata: CheckpointMetadata) -> Any:
    raw = json.dumps(get_checkpoint_metadata(config, metadata), ensure_ascii=False)
    return json.loads(raw.encode("utf-8", "ignore"))


def _postgres_metadata(config: RunnableConfig, metadata: CheckpointMetadata) -> Any:
    return json.loads(json.dumps(get_serializable_checkpoint_metadata(config, metadata)))


def profile_for(durable: BaseCheckpointSaver[Any]) -> Profile:
    from langgraph.checkpoint.postgres import PostgresSaver
    from langgraph.checkpoint.sqlite import SqliteSaver

    if isinstance(durable, PostgresSaver):
        return Profile(_postgres_metadata, echoes_config=False)
    if isinstance(durable, SqliteSaver):
        return Profile(_sqlite_metadata, echoes_config=True)
    return Profile(None, echoes_config=False)


# -- writing -----------------------------------------------------------------------------------


def _channel_fields(
    serde: SerializerProtocol, values: Mapping[str, Any], versions: Mapping[str, Any]
) -> list[bytes]:
    out: list[bytes] = []
    for channel, value in values.items():
        v_type, payload = serde.dumps_typed(value)
        value_name, version_name = _channel_names(channel)
        out += [
            value_name,
            _typed_head(v_type) + payload,
            version_name,
            _version_bytes(versions.get(channel)),
        ]
    return out


def _head_fields(
    serde: SerializerProtocol, checkpoint: Checkpoint, metadata: Any, parent: Any
) -> list[bytes]:
    skeleton = {k: v for k, v in checkpoint.items() if k != "channel_values"}
    ck_type, ck_payload = serde.dumps_typed(skeleton)
    md_type, md_payload = serde.dumps_typed(metadata)
    head = [b"ck", _typed_head(ck_type) + ck_payload, b"md", _typed_head(md_type) + md_payload]
    if parent:
        head += [b"pid", str(parent).encode()]
    return head


@dataclass
class PutPlan:
    """The Redis side of one `put`: the fields to set and the channels carried over."""

    fields: list[bytes]
    """ck, md, pid, and the v:/V: fields of the channels in new_versions."""
    keep: str
    """JSON {channel: version JSON} of the unchanged channels, carried over by the script."""
    root_ok: bool
    """As a root put (no parent entry to carry values from), the fields are the whole entry and
    match the durable saver: every channel is new, or a primitive the SQL savers store inline
    (an unchanged blob channel would come from the arguments, but PostgresSaver returns its
    stored blob instead)."""
    unchanged: dict[str, Any]


def plan_put(
    serde: SerializerProtocol,
    profile: Profile,
    config: RunnableConfig,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
    new_versions: ChannelVersions,
) -> PutPlan | None:
    """The fields of the cache entry, or None when the cache cannot mirror the durable saver."""
    normalise = profile.metadata
    if normalise is None:
        return None
    values = checkpoint["channel_values"]
    versions = checkpoint["channel_versions"]
    changed: dict[str, Any] = {}
    unchanged: dict[str, Any] = {}
    for channel, value in values.items():
        version = versions.get(channel)
        if version is None:
            return None  # savers disagree on values without a version: leave it to them
        if channel in new_versions:
            if new_versions[channel] != version and not is_primitive(value):
                return None  # PostgresSaver would store it under one version and load another
            changed[channel] = value
        else:
            unchanged[channel] = value
    parent = config["configurable"].get("checkpoint_id")
    fields = _head_fields(serde, checkpoint, normalise(config, metadata), parent)
    fields += _channel_fields(serde, changed, versions)
    keep = json.dumps({channel: version_json(versions[channel]) for channel in unchanged})
    root_ok = all(is_primitive(v) for v in unchanged.values())
    return PutPlan(fields=fields, keep=keep, root_ok=root_ok, unchanged=unchanged)


def root_fields(serde: SerializerProtocol, checkpoint: Checkpoint, plan: PutPlan) -> list[bytes]:
    """A root put's fields: the plan's and those of the unchanged (primitive) channels."""
    return plan.fields + _channel_fields(serde, plan.unchanged, checkpoint["channel_versions"])


@dataclass
class WritesFields:
    fields: list[bytes]
    overwrite: bool
    """The durable savers' rule: a batch of only special writes (errors, interrupts...)
    replaces earlier ones; anything else is insert-or-ignore per (task_id, idx)."""


def writes_fields(
    serde: SerializerProtocol,
    writes: Sequence[tuple[str, Any]],
    task_id: str,
    task_path: str,
) -> WritesFields:
    """``w:[task_id,idx]`` -> ``[[task_path, task_id, idx], task_id, channel, type]`` NUL bytes:
    read back in ``(task_path, task_id, idx)`` order, as the durable savers return them.

    The JSON is put together from the JSON of its strings, byte for byte what `_json` makes of
    the lists (the field names are the insert-or-ignore key of a write, whichever process wrote
    it): one encoder call per write cost more than the rest of the call."""
    fields: list[bytes] = []
    tid = _jstr(task_id)
    sort_head = b"[[" + _jstr(task_path) + b"," + tid + b","
    for idx, (channel, value) in enumerate(writes):
        widx = b"%d" % WRITES_IDX_MAP.get(channel, idx)
        w_type, payload = serde.dumps_typed(value)
        header = sort_head + widx + b"]," + tid + b"," + _jstr(channel) + b"," + _jstr(w_type) + b"]\0"
        fields += [b"w:[" + tid + b"," + widx + b"]", header + payload]
    return WritesFields(
        fields=fields,
        overwrite=all(channel in WRITES_IDX_MAP for channel, _ in writes),
    )


def refill_fields(serde: SerializerProtocol, tup: CheckpointTuple) -> list[bytes]:
    """The fields of an entry copied from the durable saver's answer. Its pending writes carry
    no task path, so they are numbered in the order the saver returned them."""
    checkpoint = tup.checkpoint
    parent = tup.parent_config["configurable"].get("checkpoint_id") if tup.parent_config else None
    fields = _head_fields(serde, checkpoint, tup.metadata, parent)
    fields += _channel_fields(serde, checkpoint["channel_values"], checkpoint.get("channel_versions", {}))
    pending = tup.pending_writes or []
    for pos, (task_id, channel, value) in enumerate(pending):
        w_type, payload = serde.dumps_typed(value)
        fields += [b"w:" + _json([pos]), _pack([["", "", pos], task_id, channel, w_type], payload)]
    if any(w[1] == TASKS for w in pending):
        fields += [b"tw", b"1"]
    return fields


# -- reading -----------------------------------------------------------------------------------


def decode_entry(
    serde: SerializerProtocol, profile: Profile, config: RunnableConfig, fields: dict[bytes, bytes]
) -> CheckpointTuple:
    conf = config["configurable"]
    thread_id = str(conf["thread_id"])
    ns = conf.get("checkpoint_ns", "") or ""
    checkpoint_id = fields[b"id"].decode()
    (ck_type,), ck_payload = _unpack(fields[b"ck"])
    skeleton = serde.loads_typed((ck_type, ck_payload))
    (md_type,), md_payload = _unpack(fields[b"md"])
    metadata = serde.loads_typed((md_type, md_payload))
    values: dict[str, Any] = {}
    writes: list[tuple[list[Any], tuple[str, str, Any]]] = []
    for name, raw in fields.items():
        if name.startswith(b"v:"):
            (v_type,), payload = _unpack(raw)
            values[name[2:].decode()] = serde.loads_typed((v_type, payload))
        elif name.startswith(b"w:"):
            (sort_key, task_id, channel, w_type), payload = _unpack(raw)
            writes.append((sort_key, (task_id, channel, serde.loads_typed((w_type, payload)))))
    writes.sort(key=lambda w: tuple(w[0]))
    checkpoint = cast(Checkpoint, {**skeleton, "channel_values": values})
    out_config: RunnableConfig
    if conf.get("checkpoint_id") and profile.echoes_config:
        out_config = config
    else:
        out_config = {
            "configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint_id}
        }
    parent = fields.get(b"pid")
    parent_config: RunnableConfig | None = None
    if parent:
        parent_config = {
            "configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": parent.decode()}
        }
    return CheckpointTuple(
        config=out_config,
        checkpoint=checkpoint,
        metadata=metadata,
        parent_config=parent_config,
        pending_writes=[w for _, w in writes],
    )
