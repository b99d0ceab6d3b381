"""`RedisTierSaver`: the durable saver first, then Redis; reads from Redis, else the durable saver.

See the package docstring for the key layout, the consistency argument and the loss window.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Self

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
)
from langgraph.checkpoint.serde.types import TASKS

from review_agent.storage.redis.encoding import (
    decode_entry,
    escape,
    key_names,
    plan_put,
    profile_for,
    refill_fields,
    root_fields,
    writes_fields,
)
from review_agent.storage.redis.link import UNAVAILABLE, Link, TierStats, nonce

__all__ = ["RedisTierSaver"]

logger = logging.getLogger("review_agent.storage.redis")

_Keys = tuple[str, str, str]
_MAX_EMPTY_SEEN = 1024
"""Namespaces read as empty whose root put is still to come, remembered at most."""

_Command = tuple[str, list[Any]]
"""Name and arguments of one write script call (its keys are the namespace's)."""


def _namespace(config: RunnableConfig) -> tuple[str, str] | None:
    """(thread id, namespace) of a config, or None without a thread id (the durable saver then
    reports the bad config its own way)."""
    conf = config.get("configurable") or {}
    if "thread_id" not in conf:
        return None
    return str(conf["thread_id"]), conf.get("checkpoint_ns", "") or ""


class RedisTierSaver(BaseCheckpointSaver[Any]):
    """Write-through Redis cache in front of a durable checkpointer; see the package docstring.

    Sync only: the service runs its graphs with `stream`/`invoke`, and the async methods of
    `BaseCheckpointSaver` raise NotImplementedError.

    Args:
        durable: the saver that owns the data (PostgresSaver or SqliteSaver; any other is cached
            only from its own answers). It is not closed by this class: whoever opened it does.
        redis_url: ``redis://[:password@]host:port/db``. Never logged unredacted.
        ttl_seconds: lifetime of a thread's keys after its last write.
        prefix: namespace of every key; tests and tenants use distinct prefixes.
        socket_timeout: seconds a Redis command may take before Redis counts as down.
        connect_timeout: seconds a Redis connect may take before Redis counts as down.
        retry_after: seconds to leave Redis alone after a failure before trying it again.
        clock: the monotonic clock that retry windows are measured on (tests move it).
    """

    def __init__(
        self,
        durable: BaseCheckpointSaver[Any],
        redis_url: str,
        *,
        ttl_seconds: int = 86400,
        prefix: str = "review-agent:",
        socket_timeout: float = 0.5,
        connect_timeout: float = 0.25,
        retry_after: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(durable, RedisTierSaver):
            raise TypeError("RedisTierSaver must wrap a durable saver, not another RedisTierSaver")
        if int(ttl_seconds) <= 0:
            raise ValueError("ttl_seconds must be a positive number of seconds")
        super().__init__(serde=durable.serde)
        self.durable = durable
        # The durable saver's own serde, so that the cache encodes exactly as it does.
        self.serde = durable.serde
        self.ttl_seconds = int(ttl_seconds)
        self.prefix = prefix
        self._profile = profile_for(durable)
        self._empty_seen: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        """(thread id, namespace) read as empty -> what Redis held then (`_remember_empty`)."""
        self._children_on_the_way = _Tally()
        """(entry key, parent id) of the puts under way in this process (`put_writes`)."""
        self._link = Link(
            redis_url,
            prefix=prefix,
            # A write session's key outlives any pause between two writes shorter than half of
            # it (a longer one opens a new session): at least an hour, whatever the data TTL.
            session_ttl=max(self.ttl_seconds, 3600),
            socket_timeout=socket_timeout,
            connect_timeout=connect_timeout,
            retry_after=retry_after,
            clock=clock,
        )

    # -- plumbing ------------------------------------------------------------------------------

    @property
    def redis_url(self) -> str:
        """The Redis URL with its password redacted."""
        return self._link.safe_url

    @property
    def stats(self) -> TierStats:
        """The counters, after reading the replies of the writes in flight (so that they count
        every write made so far)."""
        self._link.settle()
        return self._link.stats

    def flush(self) -> None:
        """Wait until Redis has answered every write made so far. Not needed for consistency -
        this process's reads see its earlier writes anyway - but it bounds when other processes
        see them; `close` does it."""
        self._link.settle()

    @property
    def config_specs(self) -> list:
        return self.durable.config_specs

    def close(self) -> None:
        """Read the replies in flight and close the Redis connection (the durable saver stays
        open: its owner closes it)."""
        self._link.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def with_allowlist(self, extra_allowlist: Collection[tuple[str, ...]]) -> BaseCheckpointSaver[Any]:
        """Clone around the durable saver's own clone, so both decode with the same allowlist.

        LangGraph calls this when compiling a graph; the base implementation would change only
        our serde and leave the durable saver decoding differently from the cache.
        """
        durable = self.durable.with_allowlist(extra_allowlist)
        if durable is self.durable:
            return self
        clone = copy.copy(self)
        clone.durable = durable
        clone.serde = durable.serde
        return clone

    def get_next_version(self, current: Any, channel: None) -> Any:
        """The durable saver's versions, since it stores and compares them."""
        return self.durable.get_next_version(current, channel)

    def _keys(self, thread_id: str, ns: str) -> _Keys:
        return key_names(self.prefix, thread_id, ns)

    # -- reads ---------------------------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Latest (or given) checkpoint: from Redis if cached and valid, else the durable saver,
        whose answer is then copied into Redis unless a write or delete came in between."""
        where = _namespace(config)
        if where is None:
            return self.durable.get_tuple(config)
        keys = self._keys(*where)
        want = config["configurable"].get("checkpoint_id") or ""
        result = self._link.call("read", keys, [escape(where[1]), nonce(), want], write=False)
        stats = self._link.stats
        if result is not UNAVAILABLE and int(result[0]) == 1:
            raw = result[1]
            try:
                tup = decode_entry(
                    self.serde, self._profile, config, dict(zip(raw[::2], raw[1::2], strict=True))
                )
            except Exception:
                # A field we cannot decode (a serde that changed under us): the durable saver has it.
                logger.debug("undecodable Redis tier entry; reading the durable saver", exc_info=True)
            else:
                stats.hits += 1
                return tup
        stats.misses += 1
        tup = self.durable.get_tuple(config)
        if result is not UNAVAILABLE and int(result[0]) == 0 and not want:
            if tup is not None:
                self._refill(keys, where[1], result[1:4], tup)
            else:
                self._remember_empty(where, result[1:4])
        return tup

    def _remember_empty(self, where: tuple[str, str], observed: Sequence[bytes]) -> None:
        """A namespace read as empty: what Redis held then is what its root put will check
        (`_root_observation`). LangGraph reads a thread before it starts it, so a run's root
        put finds its observation here and costs no round trip of its own."""
        empty = self._empty_seen
        empty[where] = b"\n".join(observed)
        empty.move_to_end(where)
        while len(empty) > _MAX_EMPTY_SEEN:
            empty.popitem(last=False)

    def _refill(self, keys: _Keys, ns: str, observed: Sequence[Any], tup: CheckpointTuple) -> None:
        try:
            fields = refill_fields(self.serde, tup)
        except Exception:
            logger.debug("checkpoint not cacheable; not refilling", exc_info=True)
            return
        ep, gen, change = observed
        checkpoint_id = str(tup.config["configurable"]["checkpoint_id"])
        args = [
            escape(ns),
            nonce(),
            ep,
            gen,
            change,
            self.ttl_seconds,
            "v:" + nonce(),
            checkpoint_id,
            *fields,
        ]
        if self._link.call("refill", keys, args, write=False) == 1:
            self._link.stats.refills += 1

    # -- writes --------------------------------------------------------------------------------

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Durable saver first, then Redis (pipelined: `Link.send`), so the checkpoint is never
        only in Redis. A child is installed only over its parent; a root checkpoint only if its
        thread was not deleted or written since just before the durable write.

        The Redis command is prepared before the durable write: in LangGraph's loop the put
        usually waits there for the saver's lock while the step's pending writes are committed,
        so the serialising costs the step nothing; after the commit, only the send is left (the
        step waits for its put, not for its pending writes)."""
        where = _namespace(config)
        if where is None:
            return self.durable.put(config, checkpoint, metadata, new_versions)
        keys = self._keys(*where)
        parent = config["configurable"].get("checkpoint_id")
        running = (keys[2], str(parent)) if parent else None
        if running is not None:
            self._children_on_the_way.begin(running)
        try:
            prepared = self._prepare_put(keys, where, config, checkpoint, metadata, new_versions)
            with self._redis_step_guard():
                try:
                    next_config = self.durable.put(config, checkpoint, metadata, new_versions)
                except Exception:
                    self._forget_namespace(keys, where[1])
                    raise
                self._send(keys, prepared)
        finally:
            if running is not None:
                self._children_on_the_way.end(running)
        return next_config

    def _prepare_put(
        self,
        keys: _Keys,
        where: tuple[str, str],
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> _Command | None:
        """The script call of a put, or None while Redis is backing off."""
        if not self._link.available():
            return None
        ns = where[1]
        tag = nonce()
        parent = config["configurable"].get("checkpoint_id")
        try:
            plan = plan_put(self.serde, self._profile, config, checkpoint, metadata, new_versions)
            if plan is not None:
                common = [escape(ns), tag, checkpoint["id"], self.ttl_seconds, "v:" + tag]
                legacy = "1" if int(checkpoint.get("v", 4)) < 4 else "0"
                if parent:
                    return "put", [*common, "inc", legacy, str(parent), plan.keep, *plan.fields]
                if plan.root_ok:
                    seen = self._root_observation(keys, where)
                    if seen is not None:
                        fields = root_fields(self.serde, checkpoint, plan)
                        return "put", [*common, "root", legacy, seen, "{}", *fields]
        except Exception:
            logger.debug("checkpoint not cacheable; invalidating its entry", exc_info=True)
        return "invalidate", [escape(ns), tag, self.ttl_seconds]

    def _root_observation(self, keys: _Keys, where: tuple[str, str]) -> bytes | None:
        """The epoch, generation and change nonce that a root put must find unchanged after its
        durable write, observed before it: by the read that found the namespace empty, or else
        now (a round trip). None if Redis did not answer."""
        seen = self._empty_seen.pop(where, None)
        if seen is not None:
            return seen
        observed = self._link.call("observe", keys[:2], [escape(where[1]), nonce()], write=False)
        return None if observed is UNAVAILABLE else b"\n".join(observed)

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Durable saver first, then merged into the cached entry if it is that checkpoint (a
        pipelined Redis step, like `put`'s) - or, when this process is already putting a child
        of that checkpoint, only marked: the entry stops being served until the child replaces it.

        Why the mark: in LangGraph's loop the step's checkpoint usually waits for the saver's lock
        while the step's last pending writes are committed, and its put drops them from Redis
        right after (the durable savers return pending writes only with their checkpoint).
        Sending them would be work for nothing; sending nothing would let Redis serve the parent
        without them if this process died before the child's Redis step. The mark is a small
        command, and the window stays what it is for any write: until Redis reads it.

        Prepared after the durable write, unlike a put's: the step's put waits for the saver's
        lock meanwhile, so serialising here overlaps that put's own durable write instead of
        delaying it."""
        where = _namespace(config)
        if where is None or not writes:
            self.durable.put_writes(config, writes, task_id, task_path)
            return
        keys = self._keys(*where)
        with self._redis_step_guard():
            try:
                self.durable.put_writes(config, writes, task_id, task_path)
            except Exception:
                self._forget_namespace(keys, where[1])
                raise
            self._send(keys, self._prepare_writes(keys, where[1], config, writes, task_id, task_path))

    def _prepare_writes(
        self,
        keys: _Keys,
        ns: str,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> _Command | None:
        if not self._link.available():
            return None
        tag = nonce()
        checkpoint_id = str(config["configurable"]["checkpoint_id"])
        tasks_write = "1" if any(channel == TASKS for channel, _ in writes) else "0"
        if self._children_on_the_way.has((keys[2], checkpoint_id)):
            return "put_writes", [escape(ns), tag, checkpoint_id, self.ttl_seconds, "demote", tasks_write]
        try:
            wf = writes_fields(self.serde, writes, task_id, task_path)
        except Exception:
            logger.debug("writes not cacheable; invalidating their entry", exc_info=True)
            return "invalidate", [escape(ns), tag, self.ttl_seconds]
        mode = "overwrite" if wf.overwrite else "merge"
        return "put_writes", [escape(ns), tag, checkpoint_id, self.ttl_seconds, mode, tasks_write, *wf.fields]

    def _send(self, keys: _Keys, prepared: _Command | None) -> None:
        """The Redis step of a committed write. Not prepared (Redis was backing off): the write
        is skipped, and the epoch is replaced before Redis is trusted again."""
        if prepared is None:
            self._link.skip_write()
        else:
            self._link.send(prepared[0], keys, prepared[1])

    @contextmanager
    def _redis_step_guard(self) -> Iterator[None]:
        """Around a durable write and its Redis step: if something interrupts between them (a
        KeyboardInterrupt, a SystemExit), Redis may now be behind the durable saver, so the link
        replaces the epoch before trusting Redis again. Exceptions of the durable write itself
        are handled by the caller (`_forget_namespace`)."""
        try:
            yield
        except Exception:
            raise
        except BaseException:
            self._link.skip_write()
            raise

    def _forget_namespace(self, keys: _Keys, ns: str) -> None:
        """After a failed durable write, which may have been partly applied (PostgresSaver
        pipelines several autocommitted statements): stop serving the namespace until a read
        refills it from whatever the durable saver now holds."""
        self._link.call("invalidate", keys, [escape(ns), nonce(), self.ttl_seconds], write=True)

    # -- deletes and maintenance ---------------------------------------------------------------

    def _forget_threads(self, thread_ids: Sequence[Any]) -> None:
        for thread_id in thread_ids:
            epoch, index, _ = self._keys(str(thread_id), "")
            entry_prefix = f"{self.prefix}c:{escape(str(thread_id))}:"
            self._link.call(
                "tombstone", [epoch, index], [entry_prefix, nonce(), self.ttl_seconds], write=True
            )

    def _forget_all(self) -> None:
        self._link.call("bump", [self._link.epoch_key], [nonce()], write=True)

    def _maintain(
        self, op: str, args: tuple[Any, ...], kwargs: dict[str, Any], forget: Callable[[], None]
    ) -> None:
        """Run a durable maintenance call, then forget what it may have changed in Redis - also
        when it failed part-way (PostgresSaver runs several autocommitted statements), except
        when the durable saver does not implement it at all."""
        try:
            getattr(self.durable, op)(*args, **kwargs)
        except NotImplementedError:
            raise
        except Exception:
            forget()
            raise
        forget()

    def delete_thread(self, thread_id: str) -> None:
        """Delete from the durable saver, then drop the thread's Redis keys."""
        self._maintain("delete_thread", (thread_id,), {}, lambda: self._forget_threads([thread_id]))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """The affected threads are unknown here, so every cached entry is invalidated."""
        if not run_ids:
            self.durable.delete_for_runs(run_ids)
            return
        self._maintain("delete_for_runs", (run_ids,), {}, self._forget_all)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """The target's latest checkpoint may change: its entries are dropped."""
        self._maintain(
            "copy_thread",
            (source_thread_id, target_thread_id),
            {},
            lambda: self._forget_threads([target_thread_id]),
        )

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Pruned threads are dropped from Redis; the next read refills what is left."""
        self._maintain(
            "prune", (thread_ids,), {"strategy": strategy}, lambda: self._forget_threads(thread_ids)
        )

    # -- history (last in the class: `list` would shadow the builtin in annotations below) --

    def get_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """Walks ancestors, which only the durable saver has."""
        return self.durable.get_delta_channel_history(config=config, channels=channels)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """History comes from the durable saver: Redis holds only the latest checkpoint."""
        yield from self.durable.list(config, filter=filter, before=before, limit=limit)


class _Tally:
    """A thread-safe multiset of keys: the puts under way, by entry and parent checkpoint.

    Whether a key is present only chooses between merging a checkpoint's writes into Redis and
    marking its entry unservable; both are safe, so a race here costs a cache hit at most."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}

    def begin(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1

    def end(self, key: tuple[str, str]) -> None:
        with self._lock:
            left = self._counts.get(key, 0) - 1
            if left > 0:
                self._counts[key] = left
            else:
                self._counts.pop(key, None)

    def has(self, key: tuple[str, str]) -> bool:
        return key in self._counts
