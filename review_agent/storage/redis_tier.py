"""The Redis hot tier: a write-through cache of each thread's latest checkpoint on plain Redis 7.

`RedisTierSaver` wraps a durable checkpointer (PostgresSaver, SqliteSaver or their async twins) and
keeps, per thread and checkpoint namespace, the latest checkpoint and its pending writes in Redis,
so that the reads a resume or a `status` makes are answered without a database query. It needs no
Redis module (no RedisJSON, no RediSearch): only hashes, strings and Lua scripts.

Writes go to the durable saver first and to Redis second; reads try Redis and fall back to the
durable saver on a miss, an eviction, a flush, a restart or an outage, refilling Redis on a miss.
`list`, history and every maintenance call go to the durable saver.

Key layout
----------
`P` is the configured prefix (default ``review-agent:``). Thread ids and namespaces are escaped
(``%`` -> ``%25``, ``:`` -> ``%3A``) so that ``:`` can separate them unambiguously; ``TID`` and
``NS`` below are the escaped forms.

``P epoch`` (string, no TTL)
    ``<server run_id>:<nonce>``. Every cache entry records the epoch it was written in and is
    valid only while the epoch is unchanged. A Redis restart changes the server's run_id, so an
    entry restored from an RDB/AOF snapshot taken before later writes is never served; a saver
    that could not reach Redis during a write replaces the nonce when it reaches Redis again.

``P t:TID`` (hash, TTL) - the thread's index and its validity bookkeeping:
    ``g``        generation; replaced when the thread is deleted, copied onto or pruned
    ``n:NS``     token of the valid entry of namespace NS (absent: nothing valid is cached)
    ``c:NS``     change nonce, replaced by every write to NS (a refill's compare-and-set)
    ``o:NS``     newest checkpoint id that received writes before it was cached

``P c:TID:NS`` (hash, TTL) - the latest checkpoint of one thread and namespace:
    ``id``, ``pid``      checkpoint id, parent checkpoint id (absent for a root checkpoint)
    ``tok``, ``ep``      validity token and epoch (must equal ``n:NS`` in the index and ``P epoch``)
    ``st``               ``ok``: servable; ``base``: channel values exact, pending writes not
    ``wx``               set when built from a durable read, whose writes carry no task path
                         or index: later writes cannot be merged in order, so they demote it
    ``tw``               set when a write to the ``__pregel_tasks`` channel was recorded
    ``ck``               the checkpoint without its channel values (serde-typed)
    ``md``               the metadata, as the durable saver returns it (serde-typed)
    ``v:<channel>``      one field per channel: ``[type]`` + NUL + serde bytes
    ``V:<channel>``      its version (JSON), apart so that a put can check it cheaply
    ``w:<json key>``     one field per pending write: ``[sort key, task_id, channel, type]`` +
                         NUL + serde bytes

Only the latest checkpoint of a namespace is kept, and a superstep's `put` sends and writes only the
channels in its ``new_versions`` (the others stay in place once the script has checked their
versions), so what a superstep costs Redis grows neither with the number of earlier checkpoints nor
with the size of unchanged state. Every write refreshes the TTL of the thread's keys.

Consistency argument
--------------------
1. *No finished write is lost.* A `put`, `put_writes`, `delete_*`, `copy_thread` or `prune` returns
   only after the durable saver has committed it; Redis is written afterwards and is never the only
   copy. If Redis fails, the call still succeeds from the durable write.

2. *A cache hit equals the durable saver's answer.* An entry is served only if its token matches
   the index, its epoch is current and it is marked ``ok``. It is written in two ways, both by
   atomic Lua scripts:

   - *Write-through* (`put`, `put_writes`): the entry is built from the arguments, normalised as the
     durable saver normalises them (metadata merged from the config and JSON round-tripped for the
     SQL savers). A `put` is installed when the cached entry is its parent (only the new channel
     versions are sent), when it starts a namespace, or - a fork - when every channel it does not
     update is a primitive the SQL savers store inline. Anything else invalidates the entry instead
     of guessing: a cold cache (the durable saver may hold newer state than Redis knows), channel
     values without a version, legacy (v < 4) checkpoints whose parent had pending sends, a
     checkpoint id that already received writes. Writes are merged only into an entry built by
     write-through, with the durable savers' conflict rule (insert-or-ignore per task and index;
     overwrite when all writes of a call are special channels), and read back in
     `(task_path, task_id, idx)` order like theirs.
   - *Refill* after a miss: the tuple the durable saver returned is stored. The script installs it
     only if the epoch, the thread generation and the namespace's change nonce are those observed
     before the durable read: any write, delete or bump in between replaces one of them, so a refill
     can never put back a state older than a finished write.

3. *Failures invalidate instead of going stale.* Scripts are atomic, so an entry is never half
   written. If a write's Redis step fails or is skipped (outage), the saver remembers it and, the
   next time Redis answers, replaces the epoch before any other command, which invalidates every
   entry at once. A durable write that raises (it may have been applied in part) invalidates its
   namespace, and a delete, copy or prune drops the thread from Redis even if it failed part-way.
   Eviction or expiry of the index makes all of a thread's entries invalid; eviction of an entry is
   a miss; a flush is a miss everywhere; a Redis restart changes the epoch.

Residual window, by design: if Redis stops answering this process between a durable write and its
Redis step *and the process ends before Redis answers it again*, another process can later read the
previous checkpoint of that thread from Redis (until the TTL, a restart of Redis or the next write
of that namespace). Nothing is lost - the durable saver has the newer checkpoint and `list` shows
it - but the reader resumes one or more steps back. Keep `ttl_seconds` short where that matters.

Concurrency: writes to one namespace may be concurrent (parallel tasks' `put_writes`); a read
concurrent with a write may see it or not, as with the durable saver. Standalone Redis only: the
thread scripts touch keys named from the index (not Redis Cluster safe).
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import logging
import secrets
import threading
import time
import weakref
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self, cast
from urllib.parse import urlsplit

import redis
import redis.asyncio as aredis
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
    get_checkpoint_metadata,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.types import TASKS
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from review_agent.redaction import redact_url

__all__ = ["RedisTierSaver", "TierStats"]

logger = logging.getLogger(__name__)

_ERRORS: Final = (RedisError, OSError)
"""What a Redis call may raise when Redis is down, slow or refusing: all degrade, none crash."""

# --------------------------------------------------------------------------------------------
# Lua scripts. Each runs atomically on the server, which is what makes the compare-and-set of a
# refill and the "only if the cached entry is the parent" rule of a put sound under concurrency.
# --------------------------------------------------------------------------------------------

_LUA_LIB: Final = r"""
local function epoch(ekey, nonce)
  local info = redis.call('INFO', 'server')
  local rid = string.match(info, 'run_id:(%x+)') or 'unknown'
  local ep = redis.call('GET', ekey)
  if (not ep) or string.sub(ep, 1, #rid + 1) ~= rid .. ':' then
    ep = rid .. ':' .. nonce
    redis.call('SET', ekey, ep)
  end
  return ep
end

local function usable(tkey, hkey, ns, ep)
  local tok = redis.call('HGET', tkey, 'n:' .. ns)
  if not tok then return false end
  local h = redis.call('HMGET', hkey, 'tok', 'ep')
  return h[1] == tok and h[2] == ep
end

local function older(a, b)
  if a == b then return false end
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

local function hset_list(hkey, t, first)
  local i = first
  while i <= #t do
    local last = math.min(i + 199, #t)
    redis.call('HSET', hkey, unpack(t, i, last))
    i = last + 1
  end
end
"""

# KEYS: epoch, index, entry. ARGV: ns, nonce, wanted checkpoint id ('' = latest).
# -> {1, HGETALL} hit | {2} valid entry but another checkpoint asked | {0, epoch, gen, change}
_READ: Final = (
    _LUA_LIB
    + r"""
local ep = epoch(KEYS[1], ARGV[2])
if usable(KEYS[2], KEYS[3], ARGV[1], ep) then
  local h = redis.call('HMGET', KEYS[3], 'st', 'id')
  if h[1] == 'ok' then
    if ARGV[3] == '' or ARGV[3] == h[2] then
      return {1, redis.call('HGETALL', KEYS[3])}
    end
    return {2}
  end
end
return {0, ep, redis.call('HGET', KEYS[2], 'g') or '',
        redis.call('HGET', KEYS[2], 'c:' .. ARGV[1]) or ''}
"""
)

# KEYS: epoch, index, entry. ARGV: ns, nonce, epoch, gen, change (as observed by READ), ttl,
# token, checkpoint id, then field/value pairs. -> 1 installed | 0 something changed meanwhile
_REFILL: Final = (
    _LUA_LIB
    + r"""
local ns = ARGV[1]
local ep = epoch(KEYS[1], ARGV[2])
if ep ~= ARGV[3] then return 0 end
if (redis.call('HGET', KEYS[2], 'g') or '') ~= ARGV[4] then return 0 end
if (redis.call('HGET', KEYS[2], 'c:' .. ns) or '') ~= ARGV[5] then return 0 end
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[3], 'tok', ARGV[7], 'ep', ep, 'st', 'ok', 'id', ARGV[8], 'wx', '1')
hset_list(KEYS[3], ARGV, 9)
redis.call('HSET', KEYS[2], 'n:' .. ns, ARGV[7], 'c:' .. ns, ARGV[2])
local o = redis.call('HGET', KEYS[2], 'o:' .. ns)
if o and not older(ARGV[8], o) then redis.call('HDEL', KEYS[2], 'o:' .. ns) end
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('EXPIRE', KEYS[3], ARGV[6])
return 1
"""
)

# KEYS: epoch, index, entry. ARGV: ns, nonce, new id, parent id ('' = none), ttl, token,
# mode ('inc' | 'full'), legacy ('1' = checkpoint v < 4), JSON {channel: version JSON} of the
# channels to carry over, then field/value pairs to set.
# 'inc' leaves the carried-over fields where they are (no copy) and deletes only what the new
# checkpoint no longer has: a superstep costs Redis what it changed, not the size of the state.
# -> 1 installed | 0 invalidated | 2 older than the cached latest: unchanged | -1 send it in full
_PUT: Final = (
    _LUA_LIB
    + r"""
local ns, nonce, newid, parent, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local T, H = KEYS[2], KEYS[3]
local ep = epoch(KEYS[1], nonce)
local function invalidate()
  redis.call('HDEL', T, 'n:' .. ns)
  redis.call('HSET', T, 'c:' .. ns, nonce)
  redis.call('EXPIRE', T, ttl)
  return 0
end
local hid = false
if usable(T, H, ns, ep) then hid = redis.call('HGET', H, 'id') end
local o = redis.call('HGET', T, 'o:' .. ns)
if o and not older(o, newid) then return invalidate() end
if hid then
  if hid == newid then return invalidate() end
  if older(newid, hid) then return 2 end
end
if ARGV[7] == 'inc' then
  if not hid then return invalidate() end
  if hid ~= parent then return -1 end
  if ARGV[8] == '1' and redis.call('HGET', H, 'tw') then return invalidate() end
  local keep = cjson.decode(ARGV[9])
  for ch, ver in pairs(keep) do
    if redis.call('HGET', H, 'V:' .. ch) ~= ver then return -1 end
  end
  local setting = {}
  for i = 10, #ARGV, 2 do setting[ARGV[i]] = true end
  local drop = {}
  for _, f in ipairs(redis.call('HKEYS', H)) do
    local p = string.sub(f, 1, 2)
    local carried = (p == 'v:' or p == 'V:') and keep[string.sub(f, 3)]
    if ((p == 'v:' or p == 'V:' or p == 'w:') and not carried and not setting[f])
        or f == 'wx' or f == 'tw' then
      drop[#drop + 1] = f
    end
  end
  local i = 1
  while i <= #drop do
    local last = math.min(i + 199, #drop)
    redis.call('HDEL', H, unpack(drop, i, last))
    i = last + 1
  end
else
  if parent ~= '' and ((not hid) or ARGV[8] == '1') then return invalidate() end
  redis.call('DEL', H)
end
redis.call('HSET', H, 'tok', ARGV[6], 'ep', ep, 'st', 'ok', 'id', newid)
hset_list(H, ARGV, 10)
redis.call('HSET', T, 'n:' .. ns, ARGV[6], 'c:' .. ns, nonce)
if o then redis.call('HDEL', T, 'o:' .. ns) end
redis.call('EXPIRE', T, ttl)
redis.call('EXPIRE', H, ttl)
return 1
"""
)

# KEYS: epoch, index, entry. ARGV: ns, nonce, checkpoint id, ttl, overwrite ('1'/'0'),
# tasks-write ('1'/'0'), then field/value pairs.
# -> 1 merged | 0 entry demoted or not cached | 2 writes of an older checkpoint: nothing to do
_PUT_WRITES: Final = (
    _LUA_LIB
    + r"""
local ns, nonce, cid, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local T, H = KEYS[2], KEYS[3]
local ep = epoch(KEYS[1], nonce)
local base = usable(T, H, ns, ep)
redis.call('HSET', T, 'c:' .. ns, nonce)
redis.call('EXPIRE', T, ttl)
if base then
  local h = redis.call('HMGET', H, 'id', 'st', 'wx')
  if h[1] == cid then
    if ARGV[6] == '1' then redis.call('HSET', H, 'tw', '1') end
    if h[2] == 'ok' and not h[3] then
      for i = 7, #ARGV, 2 do
        if ARGV[5] == '1' then
          redis.call('HSET', H, ARGV[i], ARGV[i + 1])
        else
          redis.call('HSETNX', H, ARGV[i], ARGV[i + 1])
        end
      end
      redis.call('EXPIRE', H, ttl)
      return 1
    end
    redis.call('HSET', H, 'st', 'base')
    redis.call('EXPIRE', H, ttl)
    return 0
  end
  if older(cid, h[1]) then return 2 end
  redis.call('HDEL', T, 'n:' .. ns)
end
local o = redis.call('HGET', T, 'o:' .. ns)
if (not o) or older(o, cid) then redis.call('HSET', T, 'o:' .. ns, cid) end
return 0
"""
)

# KEYS: epoch, index. ARGV: ns, nonce, ttl. Forget the namespace's entry (a put the cache cannot
# mirror exactly).
_INVALIDATE: Final = r"""
redis.call('HDEL', KEYS[2], 'n:' .. ARGV[1])
redis.call('HSET', KEYS[2], 'c:' .. ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 0
"""

# KEYS: epoch, index. ARGV: entry key prefix, new generation, ttl. Drop every cached namespace of
# the thread and leave a tombstone generation so that no refill started earlier can succeed.
_TOMBSTONE: Final = r"""
local fields = redis.call('HKEYS', KEYS[2])
for _, f in ipairs(fields) do
  local p = string.sub(f, 1, 2)
  if p == 'n:' or p == 'c:' or p == 'o:' then
    redis.call('DEL', ARGV[1] .. string.sub(f, 3))
  end
end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'g', ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return #fields
"""

# KEYS: epoch. ARGV: nonce. Invalidate every entry under this prefix at once.
_BUMP: Final = r"""
local info = redis.call('INFO', 'server')
local rid = string.match(info, 'run_id:(%x+)') or 'unknown'
redis.call('SET', KEYS[1], rid .. ':' .. ARGV[1])
return 1
"""

_SCRIPTS: Final[dict[str, str]] = {
    "read": _READ,
    "refill": _REFILL,
    "put": _PUT,
    "put_writes": _PUT_WRITES,
    "invalidate": _INVALIDATE,
    "tombstone": _TOMBSTONE,
    "bump": _BUMP,
}


class _Unavailable:
    """Marker result of a Redis call that failed or was skipped (Redis down or backing off)."""


_UNAVAILABLE: Final = _Unavailable()


@dataclass
class TierStats:
    """Counters of what the tier did, for tests, `status` output and benchmarks.

    Shared by a saver and its `with_allowlist` clones (the compiled graph holds a clone).
    """

    hits: int = 0
    """get_tuple answered from Redis."""
    misses: int = 0
    """get_tuple answered by the durable saver (miss, eviction, flush, other checkpoint)."""
    refills: int = 0
    """Durable answers copied into Redis after a miss."""
    installs: int = 0
    """put/put_writes mirrored into Redis."""
    invalidations: int = 0
    """put/put_writes that left the namespace uncached because Redis could not mirror them."""
    skipped: int = 0
    """Redis calls not made or failed because Redis was unavailable."""
    bumps: int = 0
    """Epoch replacements after a write that could not reach Redis."""


# --------------------------------------------------------------------------------------------
# Redis connection state, shared by a saver and its clones.
# --------------------------------------------------------------------------------------------


class _Link:
    """Clients, scripts and health of one Redis URL.

    Why a separate object: `with_allowlist` makes shallow clones of the saver (LangGraph compiles a
    graph with one), and an outage, its single warning and the pending epoch bump must be shared by
    all of them, not tracked per copy.
    """

    def __init__(
        self,
        url: str,
        *,
        epoch_key: str,
        socket_timeout: float,
        connect_timeout: float,
        retry_after: float,
    ) -> None:
        self._url = url
        self.safe_url = redact_url(url)
        try:
            self._secret = urlsplit(url).password or ""
        except ValueError:
            self._secret = ""
        self._epoch_key = epoch_key
        self._socket_timeout = socket_timeout
        self._connect_timeout = connect_timeout
        self._retry_after = retry_after
        self._lock = threading.Lock()
        self._sync: tuple[redis.Redis, dict[str, Any]] | None = None
        # Parse the URL now (no connection is made): a malformed REDIS_URL is a configuration
        # error to report at startup, not a failure to swallow at the first checkpoint.
        self._sync_client()
        self._async: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[aredis.Redis, dict[str, Any]]
        ] = weakref.WeakKeyDictionary()
        self._down = False
        self._retry_at = 0.0
        self._warned = False
        self._dirty = 0
        """Count of writes whose Redis step failed or was skipped since the last epoch bump."""
        self.stats = TierStats()

    # -- clients -------------------------------------------------------------------------------

    def _client_kwargs(self) -> dict[str, Any]:
        # Short timeouts and no client-side retries: an outage must cost one failed attempt,
        # after which the saver stops trying for `retry_after` seconds.
        return {
            "socket_timeout": self._socket_timeout,
            "socket_connect_timeout": self._connect_timeout,
            "health_check_interval": 0,
        }

    def _sync_client(self) -> tuple[redis.Redis, dict[str, Any]]:
        with self._lock:
            if self._sync is None:
                client = redis.Redis.from_url(self._url, retry=Retry(NoBackoff(), 0), **self._client_kwargs())
                scripts = {name: client.register_script(src) for name, src in _SCRIPTS.items()}
                self._sync = (client, scripts)
            return self._sync

    def _async_client(self) -> tuple[aredis.Redis, dict[str, Any]]:
        # redis.asyncio connections belong to the loop that opened them; a saver used from
        # several loops (asyncio.run per call, test loops) gets one client per loop.
        loop = asyncio.get_running_loop()
        with self._lock:  # loops in different threads may share the saver
            entry = self._async.get(loop)
            if entry is None:
                client = aredis.Redis.from_url(
                    self._url, retry=AsyncRetry(NoBackoff(), 0), **self._client_kwargs()
                )
                scripts = {name: client.register_script(src) for name, src in _SCRIPTS.items()}
                entry = (client, scripts)
                self._async[loop] = entry
        return entry

    def close(self) -> None:
        with self._lock:
            entry, self._sync = self._sync, None
        if entry is not None:
            entry[0].close()

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._async.pop(loop, None)
        if entry is not None:
            await entry[0].aclose()

    # -- health --------------------------------------------------------------------------------

    def _should_try(self) -> bool:
        return not self._down or time.monotonic() >= self._retry_at

    def available(self) -> bool:
        """False while backing off after a failure: callers skip the work of preparing a call."""
        return self._should_try()

    def skip(self, *, write: bool) -> None:
        """Account for a call not made because Redis is backing off."""
        self._skipped(write)

    def _failed(self, exc: BaseException, write: bool) -> None:
        with self._lock:
            self._down = True
            self._retry_at = time.monotonic() + self._retry_after
            if write:
                self._dirty += 1
            self.stats.skipped += 1
            warn = not self._warned
            self._warned = True
        if warn:
            detail = f"{type(exc).__name__}: {exc}"
            if self._secret:
                detail = detail.replace(self._secret, "***")
            logger.warning(
                "Redis tier unavailable at %s (%s); using the durable checkpointer alone "
                "and retrying Redis every %.1fs",
                self.safe_url,
                detail,
                self._retry_after,
            )

    def _skipped(self, write: bool) -> None:
        with self._lock:
            if write:
                self._dirty += 1
            self.stats.skipped += 1

    def _succeeded(self) -> None:
        if not self._down:
            return
        with self._lock:
            recovered, self._down, self._warned = self._down, False, False
        if recovered:
            logger.info("Redis tier at %s answers again", self.safe_url)

    # -- calls ---------------------------------------------------------------------------------

    def call(self, name: str, keys: Sequence[str], args: Sequence[Any], *, write: bool) -> Any:
        """Run one script; `_UNAVAILABLE` if Redis is down (a write then schedules an epoch bump)."""
        if not self._should_try():
            self._skipped(write)
            return _UNAVAILABLE
        try:
            _, scripts = self._sync_client()
            dirty = self._dirty
            if dirty:
                scripts["bump"](keys=[self._epoch_key], args=[_nonce()])
                self._bumped(dirty)
            result = scripts[name](keys=list(keys), args=list(args))
        except _ERRORS as exc:
            self._failed(exc, write)
            return _UNAVAILABLE
        self._succeeded()
        return result

    async def acall(self, name: str, keys: Sequence[str], args: Sequence[Any], *, write: bool) -> Any:
        """Async twin of `call`, on this event loop's redis.asyncio client."""
        if not self._should_try():
            self._skipped(write)
            return _UNAVAILABLE
        try:
            _, scripts = self._async_client()
            dirty = self._dirty
            if dirty:
                await scripts["bump"](keys=[self._epoch_key], args=[_nonce()])
                self._bumped(dirty)
            result = await scripts[name](keys=list(keys), args=list(args))
        except _ERRORS as exc:
            self._failed(exc, write)
            return _UNAVAILABLE
        self._succeeded()
        return result

    def _bumped(self, seen: int) -> None:
        # Only the failures seen before the bump are covered by it; a failure racing with the
        # bump keeps the flag so that the next call bumps again.
        with self._lock:
            self._dirty -= min(seen, self._dirty)
            self.stats.bumps += 1


def _nonce() -> str:
    return secrets.token_hex(8)


# --------------------------------------------------------------------------------------------
# Encoding of cache fields.
# --------------------------------------------------------------------------------------------


def _esc(value: str) -> str:
    """Escape a thread id or namespace so that ``:`` can separate them in key names."""
    return value.replace("%", "%25").replace(":", "%3A")


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
def _version_json(version: Any) -> str:
    """A channel version as stored in its ``V:`` field (cached: most are unchanged every step)."""
    return _json(version).decode()


def _is_primitive(value: Any) -> bool:
    """Values PostgresSaver stores inline in the checkpoint row rather than as versioned blobs."""
    return value is None or isinstance(value, str | int | float | bool)


@dataclass(frozen=True)
class _Profile:
    """What a durable saver does to a checkpoint on the way in and out, where savers differ.

    The cache must return what the durable saver would, so write-through needs to know it.
    `metadata` is None for savers not modelled here (InMemorySaver, ShallowPostgresSaver, third
    party): their puts invalidate, and only refills - copies of the saver's own answers - are
    cached, which is exact whatever the saver does.
    """

    metadata: Callable[[SerializerProtocol, RunnableConfig, CheckpointMetadata], Any] | None
    echoes_config: bool
    """get_tuple with a checkpoint_id returns the caller's config object itself."""


def _sqlite_metadata(serde: SerializerProtocol, config: RunnableConfig, metadata: CheckpointMetadata) -> Any:
    raw = json.dumps(get_checkpoint_metadata(config, metadata), ensure_ascii=False)
    return json.loads(raw.encode("utf-8", "ignore"))


def _postgres_metadata(
    serde: SerializerProtocol, config: RunnableConfig, metadata: CheckpointMetadata
) -> Any:
    return json.loads(json.dumps(get_serializable_checkpoint_metadata(config, metadata)))


def _profile_for(durable: BaseCheckpointSaver[Any]) -> _Profile:
    kinds: list[tuple[type, _Profile]] = []
    try:
        from langgraph.checkpoint.postgres import PostgresSaver
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        pg = _Profile(_postgres_metadata, echoes_config=False)
        kinds += [(PostgresSaver, pg), (AsyncPostgresSaver, pg)]
    except ImportError:  # pragma: no cover - both are dependencies of the project
        pass
    try:
        from langgraph.checkpoint.sqlite import SqliteSaver

        kinds.append((SqliteSaver, _Profile(_sqlite_metadata, echoes_config=True)))
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        kinds.append((AsyncSqliteSaver, _Profile(_sqlite_metadata, echoes_config=True)))
    except ImportError:  # pragma: no cover - aiosqlite missing
        pass
    for kind, profile in kinds:
        if isinstance(durable, kind):
            return profile
    return _Profile(None, echoes_config=False)


def _overrides(cls: type, name: str) -> bool:
    return getattr(cls, name, None) is not getattr(BaseCheckpointSaver, name, None)


@dataclass
class _PutPlan:
    """The Redis side of one `put`, computed before talking to Redis."""

    head: list[bytes]
    """ck, md and pid fields, always (re)written."""
    changed: list[bytes]
    """Fields of the channels in new_versions."""
    keep: str
    """JSON {channel: version} of the unchanged channels, carried over by the script."""
    unchanged: dict[str, Any]
    """Values of the unchanged channels, serialised only if a full write is needed."""
    full_ok: bool
    """A full write (no parent entry to carry values from) matches the durable saver."""


# --------------------------------------------------------------------------------------------
# The saver.
# --------------------------------------------------------------------------------------------


class RedisTierSaver(BaseCheckpointSaver[Any]):
    """Write-through Redis cache in front of a durable checkpointer; see the module docstring.

    Args:
        durable: the saver that owns the data (PostgresSaver, SqliteSaver or an async twin). It is
            not closed by this class: whoever opened it closes it.
        redis_url: ``redis://[:password@]host:port/db``. Never logged unredacted.
        ttl_seconds: lifetime of a thread's keys after its last write.
        prefix: namespace of every key; tests and tenants use distinct prefixes.
        socket_timeout: seconds a Redis command may take before Redis counts as down.
        connect_timeout: seconds a Redis connect may take before Redis counts as down.
        retry_after: seconds to leave Redis alone after a failure before trying it again.
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
        self._profile = _profile_for(durable)
        # Savers with real async methods are called natively; sync-only ones (SqliteSaver,
        # PostgresSaver) in a worker thread. aput_writes is the tell: the sync-only savers
        # leave it to the base class (SqliteSaver overrides aput only to raise).
        self._native_async = _overrides(type(durable), "aput_writes")
        self._link = _Link(
            redis_url,
            epoch_key=f"{prefix}epoch",
            socket_timeout=socket_timeout,
            connect_timeout=connect_timeout,
            retry_after=retry_after,
        )

    # -- plumbing ------------------------------------------------------------------------------

    @property
    def redis_url(self) -> str:
        """The Redis URL with its password redacted."""
        return self._link.safe_url

    @property
    def stats(self) -> TierStats:
        return self._link.stats

    @property
    def config_specs(self) -> list:
        return self.durable.config_specs

    def close(self) -> None:
        """Close the sync Redis client (the durable saver stays open: its owner closes it)."""
        self._link.close()

    async def aclose(self) -> None:
        """Close this event loop's Redis client (the durable saver stays open)."""
        await self._link.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
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

    def _keys(self, thread_id: Any, ns: str) -> tuple[str, str, str]:
        tid = _esc(str(thread_id))
        return f"{self.prefix}epoch", f"{self.prefix}t:{tid}", f"{self.prefix}c:{tid}:{_esc(ns)}"

    async def _adurable(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self._native_async and _overrides(type(self.durable), "a" + name):
            return await getattr(self.durable, "a" + name)(*args, **kwargs)
        return await asyncio.to_thread(getattr(self.durable, name), *args, **kwargs)

    # -- reads ---------------------------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Latest (or given) checkpoint: from Redis if cached and valid, else the durable saver."""
        req = self._read_request(config)
        if req is None:
            return self.durable.get_tuple(config)
        keys, args = req
        result = self._link.call("read", keys, args, write=False)
        tup, observed = self._on_read(config, result)
        if tup is not None:
            return tup
        tup = self.durable.get_tuple(config)
        if observed is not None and tup is not None:
            refill = self._refill_args(keys, observed, tup)
            if refill is not None:
                self._on_refill(self._link.call("refill", keys, refill, write=False))
        return tup

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Async `get_tuple`: redis.asyncio first, then the durable saver's async path."""
        req = self._read_request(config)
        if req is None:
            return await self._adurable("get_tuple", config)
        keys, args = req
        result = await self._link.acall("read", keys, args, write=False)
        tup, observed = self._on_read(config, result)
        if tup is not None:
            return tup
        tup = await self._adurable("get_tuple", config)
        if observed is not None and tup is not None:
            refill = self._refill_args(keys, observed, tup)
            if refill is not None:
                self._on_refill(await self._link.acall("refill", keys, refill, write=False))
        return tup

    def _read_request(self, config: RunnableConfig) -> tuple[tuple[str, str, str], list[Any]] | None:
        conf = config.get("configurable") or {}
        if "thread_id" not in conf:
            return None  # let the durable saver report the bad config its own way
        ns = conf.get("checkpoint_ns", "") or ""
        want = conf.get("checkpoint_id") or ""
        return self._keys(conf["thread_id"], ns), [_esc(ns), _nonce(), want]

    def _on_read(
        self, config: RunnableConfig, result: Any
    ) -> tuple[CheckpointTuple | None, tuple[Any, ...] | None]:
        """(hit, None) | (None, observation to refill with) | (None, None): go to the durable."""
        if result is _UNAVAILABLE:
            self.stats.misses += 1
            return None, None
        try:
            if int(result[0]) == 1:
                raw = result[1]
                fields = {raw[i]: raw[i + 1] for i in range(0, len(raw), 2)}
                tup = self._decode(config, fields)
                self.stats.hits += 1
                return tup, None
        except Exception:
            # A field we cannot decode (a serde that changed under us): the durable saver has it.
            logger.debug("undecodable Redis tier entry; reading the durable saver", exc_info=True)
            self.stats.misses += 1
            return None, None
        self.stats.misses += 1
        conf = config["configurable"]
        if int(result[0]) == 0 and not conf.get("checkpoint_id"):
            return None, (result[1], result[2], result[3])
        return None, None

    def _decode(self, config: RunnableConfig, fields: dict[bytes, bytes]) -> CheckpointTuple:
        conf = config["configurable"]
        thread_id = str(conf["thread_id"])
        ns = conf.get("checkpoint_ns", "") or ""
        checkpoint_id = fields[b"id"].decode()
        (ck_type,), ck_payload = _unpack(fields[b"ck"])
        skeleton = self.serde.loads_typed((ck_type, ck_payload))
        (md_type,), md_payload = _unpack(fields[b"md"])
        metadata = self.serde.loads_typed((md_type, md_payload))
        values: dict[str, Any] = {}
        writes: list[tuple[list[Any], tuple[str, str, Any]]] = []
        for name, raw in fields.items():
            if name.startswith(b"v:"):
                (v_type,), payload = _unpack(raw)
                values[name[2:].decode()] = self.serde.loads_typed((v_type, payload))
            elif name.startswith(b"w:"):
                (sort_key, task_id, channel, w_type), payload = _unpack(raw)
                value = self.serde.loads_typed((w_type, payload))
                writes.append((sort_key, (task_id, channel, value)))
        writes.sort(key=lambda w: tuple(w[0]))
        checkpoint = cast(Checkpoint, {**skeleton, "channel_values": values})
        if conf.get("checkpoint_id") and self._profile.echoes_config:
            out_config = config
        else:
            out_config = {
                "configurable": {
                    "thread_id": thread_id,
                    "checkpoint_ns": ns,
                    "checkpoint_id": checkpoint_id,
                }
            }
        parent = fields.get(b"pid")
        parent_config: RunnableConfig | None = (
            {
                "configurable": {
                    "thread_id": thread_id,
                    "checkpoint_ns": ns,
                    "checkpoint_id": parent.decode(),
                }
            }
            if parent
            else None
        )
        return CheckpointTuple(
            config=out_config,
            checkpoint=checkpoint,
            metadata=metadata,
            parent_config=parent_config,
            pending_writes=[w for _, w in writes],
        )

    def _refill_args(
        self, keys: tuple[str, str, str], observed: tuple[Any, ...], tup: CheckpointTuple
    ) -> list[Any] | None:
        try:
            conf = tup.config["configurable"]
            ns = conf.get("checkpoint_ns", "") or ""
            checkpoint = tup.checkpoint
            versions = checkpoint.get("channel_versions", {})
            skeleton = {k: v for k, v in checkpoint.items() if k != "channel_values"}
            pairs: list[bytes] = [
                b"ck",
                _pack([(st := self.serde.dumps_typed(skeleton))[0]], st[1]),
                b"md",
                _pack([(mt := self.serde.dumps_typed(tup.metadata))[0]], mt[1]),
            ]
            if tup.parent_config and tup.parent_config["configurable"].get("checkpoint_id"):
                pairs += [b"pid", str(tup.parent_config["configurable"]["checkpoint_id"]).encode()]
            for channel, value in checkpoint["channel_values"].items():
                v_type, payload = self.serde.dumps_typed(value)
                pairs += [
                    b"v:" + channel.encode(),
                    _pack([v_type], payload),
                    b"V:" + channel.encode(),
                    _version_json(versions.get(channel)).encode(),
                ]
            for pos, (task_id, channel, value) in enumerate(tup.pending_writes or []):
                w_type, payload = self.serde.dumps_typed(value)
                pairs += [
                    b"w:" + _json([pos]),
                    _pack([["", "", pos], task_id, channel, w_type], payload),
                ]
            if any(w[1] == TASKS for w in tup.pending_writes or []):
                pairs += [b"tw", b"1"]
            ep, gen, change = observed
            return [
                _esc(ns),
                _nonce(),
                ep,
                gen,
                change,
                self.ttl_seconds,
                "v:" + _nonce(),
                str(conf["checkpoint_id"]),
                *pairs,
            ]
        except Exception:
            logger.debug("checkpoint not cacheable; not refilling", exc_info=True)
            return None

    def _on_refill(self, result: Any) -> None:
        if result is not _UNAVAILABLE and int(result) == 1:
            self.stats.refills += 1

    # -- writes --------------------------------------------------------------------------------

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Durable saver first, then Redis: the checkpoint is never only in Redis."""
        try:
            next_config = self.durable.put(config, checkpoint, metadata, new_versions)
        except Exception:
            self._forget_namespace(config)
            raise
        if not self._link.available():
            self._link.skip(write=True)
            return next_config
        keys, attempts = self._put_attempts(config, checkpoint, metadata, new_versions)
        for name, args in attempts:
            result = self._link.call(name, keys, args, write=True)
            if not self._on_put(name, result):
                break
        return next_config

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Async `put`: durable saver first, then Redis."""
        try:
            next_config = await self._adurable("put", config, checkpoint, metadata, new_versions)
        except Exception:
            await self._aforget_namespace(config)
            raise
        if not self._link.available():
            self._link.skip(write=True)
            return next_config
        keys, attempts = self._put_attempts(config, checkpoint, metadata, new_versions)
        for name, args in attempts:
            result = await self._link.acall(name, keys, args, write=True)
            if not self._on_put(name, result):
                break
        return next_config

    def _on_put(self, name: str, result: Any) -> bool:
        """Record the outcome; True if the next attempt (a full write) should be made."""
        if result is _UNAVAILABLE:
            return False
        code = int(result)
        if code == -1:
            return True
        if name == "invalidate" or code == 0:
            self.stats.invalidations += 1
        elif code == 1:
            self.stats.installs += 1
        return False

    def _put_attempts(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> tuple[tuple[str, str, str], Iterator[tuple[str, list[Any]]]]:
        """The script calls for one put: an incremental write, then a full one if asked for.

        Lazy, so the unchanged channels are serialised only when the script says it could not
        carry them over (no parent entry, a fork, a version mismatch).
        """
        conf = config["configurable"]
        ns = conf.get("checkpoint_ns", "") or ""
        keys = self._keys(conf["thread_id"], ns)
        nonce = _nonce()
        try:
            plan = self._plan_put(config, checkpoint, metadata, new_versions)
        except Exception:
            logger.debug("checkpoint not cacheable; invalidating its entry", exc_info=True)
            plan = None

        def attempts() -> Iterator[tuple[str, list[Any]]]:
            if plan is None:
                yield "invalidate", [_esc(ns), nonce, self.ttl_seconds]
                return
            parent = str(conf.get("checkpoint_id") or "")
            legacy = "1" if int(checkpoint.get("v", 4)) < 4 else "0"
            common = [_esc(ns), nonce, checkpoint["id"], parent, self.ttl_seconds, "v:" + nonce]
            if parent:
                yield "put", [*common, "inc", legacy, plan.keep, *plan.head, *plan.changed]
            if not plan.full_ok:
                yield "invalidate", [_esc(ns), nonce, self.ttl_seconds]
                return
            try:
                rest = self._channel_fields(checkpoint, plan.unchanged)
            except Exception:
                logger.debug("checkpoint not cacheable; invalidating its entry", exc_info=True)
                yield "invalidate", [_esc(ns), nonce, self.ttl_seconds]
                return
            yield "put", [*common, "full", legacy, "{}", *plan.head, *plan.changed, *rest]

        return keys, attempts()

    def _channel_fields(self, checkpoint: Checkpoint, values: Mapping[str, Any]) -> list[bytes]:
        versions = checkpoint["channel_versions"]
        out: list[bytes] = []
        for channel, value in values.items():
            v_type, payload = self.serde.dumps_typed(value)
            out += [
                b"v:" + channel.encode(),
                _pack([v_type], payload),
                b"V:" + channel.encode(),
                _version_json(versions[channel]).encode(),
            ]
        return out

    def _plan_put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> _PutPlan | None:
        """The fields of the cache entry, or None when the cache cannot mirror the durable saver."""
        normalise = self._profile.metadata
        if normalise is None:
            return None
        values = checkpoint["channel_values"]
        versions = checkpoint["channel_versions"]
        for channel, value in values.items():
            if channel not in versions:
                return None  # savers disagree on values without a version: leave it to them
            if (
                channel in new_versions
                and new_versions[channel] != versions[channel]
                and not _is_primitive(value)
            ):
                return None  # PostgresSaver would store it under one version and load another
        skeleton = {k: v for k, v in checkpoint.items() if k != "channel_values"}
        ck_type, ck_payload = self.serde.dumps_typed(skeleton)
        md_type, md_payload = self.serde.dumps_typed(normalise(self.serde, config, metadata))
        head = [b"ck", _pack([ck_type], ck_payload), b"md", _pack([md_type], md_payload)]
        parent = config["configurable"].get("checkpoint_id")
        if parent:
            head += [b"pid", str(parent).encode()]
        changed_values = {k: v for k, v in values.items() if k in new_versions}
        unchanged = {k: v for k, v in values.items() if k not in new_versions}
        keep = json.dumps({channel: _version_json(versions[channel]) for channel in unchanged})
        return _PutPlan(
            head=head,
            changed=self._channel_fields(checkpoint, changed_values),
            keep=keep,
            unchanged=unchanged,
            # Without a parent entry to carry values from, an unchanged non-primitive channel
            # would come from the arguments, but PostgresSaver returns its stored blob instead.
            full_ok=all(_is_primitive(v) for v in unchanged.values()),
        )

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Durable saver first, then merged into the cached entry if it is that checkpoint."""
        try:
            self.durable.put_writes(config, writes, task_id, task_path)
        except Exception:
            self._forget_namespace(config)
            raise
        if not self._link.available():
            self._link.skip(write=True)
            return
        call = self._writes_call(config, writes, task_id, task_path)
        if call is not None:
            self._on_writes(self._link.call(call[0], call[1], call[2], write=True))

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Async `put_writes`: durable saver first, then Redis."""
        try:
            await self._adurable("put_writes", config, writes, task_id, task_path)
        except Exception:
            await self._aforget_namespace(config)
            raise
        if not self._link.available():
            self._link.skip(write=True)
            return
        call = self._writes_call(config, writes, task_id, task_path)
        if call is not None:
            self._on_writes(await self._link.acall(call[0], call[1], call[2], write=True))

    def _on_writes(self, result: Any) -> None:
        if result is _UNAVAILABLE:
            return
        if int(result) == 1:
            self.stats.installs += 1
        elif int(result) == 0:
            self.stats.invalidations += 1

    def _writes_call(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> tuple[str, tuple[str, str, str], list[Any]] | None:
        if not writes:
            return None
        conf = config["configurable"]
        ns = conf.get("checkpoint_ns", "") or ""
        keys = self._keys(conf["thread_id"], ns)
        nonce = _nonce()
        try:
            # The durable savers' rule: a batch of only special writes (errors, interrupts...)
            # replaces earlier ones; anything else is insert-or-ignore per (task_id, idx).
            overwrite = all(channel in WRITES_IDX_MAP for channel, _ in writes)
            pairs: list[bytes] = []
            for idx, (channel, value) in enumerate(writes):
                widx = WRITES_IDX_MAP.get(channel, idx)
                w_type, payload = self.serde.dumps_typed(value)
                pairs += [
                    b"w:" + _json([task_id, widx]),
                    _pack([[task_path, task_id, widx], task_id, channel, w_type], payload),
                ]
            tasks_write = any(channel == TASKS for channel, _ in writes)
        except Exception:
            logger.debug("writes not cacheable; invalidating their entry", exc_info=True)
            return "invalidate", keys, [_esc(ns), nonce, self.ttl_seconds]
        args = [
            _esc(ns),
            nonce,
            str(conf["checkpoint_id"]),
            self.ttl_seconds,
            "1" if overwrite else "0",
            "1" if tasks_write else "0",
            *pairs,
        ]
        return "put_writes", keys, args

    # -- deletes and maintenance ---------------------------------------------------------------

    def _forget_call(self, config: RunnableConfig) -> tuple[tuple[str, str, str], list[Any]] | None:
        conf = config.get("configurable") or {}
        if "thread_id" not in conf:
            return None
        ns = conf.get("checkpoint_ns", "") or ""
        return self._keys(conf["thread_id"], ns), [_esc(ns), _nonce(), self.ttl_seconds]

    def _forget_namespace(self, config: RunnableConfig) -> None:
        """After a failed durable write, which may have been partly applied (PostgresSaver
        pipelines several autocommitted statements): stop serving the namespace until a read
        refills it from whatever the durable saver now holds."""
        call = self._forget_call(config)
        if call is not None:
            self._link.call("invalidate", call[0], call[1], write=True)

    async def _aforget_namespace(self, config: RunnableConfig) -> None:
        call = self._forget_call(config)
        if call is not None:
            await self._link.acall("invalidate", call[0], call[1], write=True)

    def _tombstone_call(self, thread_id: Any) -> tuple[list[str], list[Any]]:
        epoch, index, _ = self._keys(thread_id, "")
        entry_prefix = f"{self.prefix}c:{_esc(str(thread_id))}:"
        return [epoch, index], [entry_prefix, _nonce(), self.ttl_seconds]

    def _forget_threads(self, thread_ids: Sequence[Any]) -> None:
        for thread_id in thread_ids:
            keys, args = self._tombstone_call(thread_id)
            self._link.call("tombstone", keys, args, write=True)

    async def _aforget_threads(self, thread_ids: Sequence[Any]) -> None:
        for thread_id in thread_ids:
            keys, args = self._tombstone_call(thread_id)
            await self._link.acall("tombstone", keys, args, write=True)

    def _forget_all(self) -> None:
        self._link.call("bump", [f"{self.prefix}epoch"], [_nonce()], write=True)

    async def _aforget_all(self) -> None:
        await self._link.acall("bump", [f"{self.prefix}epoch"], [_nonce()], write=True)

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

    async def _amaintain(
        self,
        op: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        forget: Callable[[], Awaitable[None]],
    ) -> None:
        try:
            await self._adurable(op, *args, **kwargs)
        except NotImplementedError:
            raise
        except Exception:
            await forget()
            raise
        await forget()

    def delete_thread(self, thread_id: str) -> None:
        """Delete from the durable saver, then drop the thread's Redis keys."""
        self._maintain("delete_thread", (thread_id,), {}, lambda: self._forget_threads([thread_id]))

    async def adelete_thread(self, thread_id: str) -> None:
        await self._amaintain("delete_thread", (thread_id,), {}, lambda: self._aforget_threads([thread_id]))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """The affected threads are unknown here, so every cached entry is invalidated."""
        if not run_ids:
            self.durable.delete_for_runs(run_ids)
            return
        self._maintain("delete_for_runs", (run_ids,), {}, self._forget_all)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        if not run_ids:
            await self._adurable("delete_for_runs", run_ids)
            return
        await self._amaintain("delete_for_runs", (run_ids,), {}, self._aforget_all)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """The target's latest checkpoint may change: its entries are dropped."""
        self._maintain(
            "copy_thread",
            (source_thread_id, target_thread_id),
            {},
            lambda: self._forget_threads([target_thread_id]),
        )

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await self._amaintain(
            "copy_thread",
            (source_thread_id, target_thread_id),
            {},
            lambda: self._aforget_threads([target_thread_id]),
        )

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Pruned threads are dropped from Redis; the next read refills what is left."""
        self._maintain(
            "prune", (thread_ids,), {"strategy": strategy}, lambda: self._forget_threads(thread_ids)
        )

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await self._amaintain(
            "prune",
            (thread_ids,),
            {"strategy": strategy},
            lambda: self._aforget_threads(thread_ids),
        )

    # -- history (last in the class: `list` would shadow the builtin in annotations below) --

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

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Async `list`. A sync-only durable saver is read in one worker-thread call.

        Materialising avoids leaving a half-consumed generator (holding the saver's lock) in a
        worker thread; the caller bounds the size with `limit`.
        """
        if self._native_async and _overrides(type(self.durable), "alist"):
            async for tup in self.durable.alist(config, filter=filter, before=before, limit=limit):
                yield tup
            return
        rows = await asyncio.to_thread(
            lambda: [*self.durable.list(config, filter=filter, before=before, limit=limit)]
        )
        for tup in rows:
            yield tup

    def get_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """Walks ancestors, which only the durable saver has."""
        return self.durable.get_delta_channel_history(config=config, channels=channels)

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        return await self._adurable("get_delta_channel_history", config=config, channels=channels)
