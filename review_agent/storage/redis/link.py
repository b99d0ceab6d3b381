"""One process's line to Redis: a connection of its own, pipelined writes, and a circuit breaker.

Why not redis-py's client and pool: a superstep's writes are *pipelined* - sent without waiting
for the reply, which is read later - and a pool would hand each call another connection, losing
the order in which Redis applies them. So the link keeps one redis-py `Connection` (the URL
parsing, AUTH, SELECT, TLS and the RESP encoder and parser are still redis-py's) and reads the
replies itself, in order.

Waiting for each reply cost a round trip and, inside LangGraph's loop, a hand-over of the GIL to
the step's other threads and back: two blocking script calls a superstep measured 1.2x the step
cost of Postgres alone.

Write sessions
--------------
Pipelined writes form a *session*: each carries its sequence number, and its script runs only
if the session's previous write was applied (`gated` in `scripts`). A write that Redis refused
or lost (an error reply, a script missing after SCRIPT FLUSH, an OOM refusal, a script that
raised) can therefore never be followed by later ones applied on top of the gap, which could
leave an entry holding some of a checkpoint's pending writes and not others: the next write
replaces the epoch instead. When the connection fails with replies unread, those writes may or
may not have been applied: the next session replaces the epoch first and closes the failed one
(``x``), so that any of its writes that Redis reads late, from a socket buffer, are refused.

The breaker
-----------
Redis is a cache: a failed call degrades to the durable saver, with one warning per outage, and
Redis is left alone for `retry_after` seconds. A write whose Redis step failed or was skipped
meanwhile makes the link replace the epoch before its next command, which invalidates every entry
at once. Time comes from an injected clock, so that tests move past a retry window instead of
sleeping through it.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.connection import AbstractConnection
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.retry import Retry

from review_agent.redaction import redact_url
from review_agent.storage.redis.scripts import GATED, SCRIPTS, SHAS

__all__ = ["UNAVAILABLE", "Link", "TierStats", "nonce"]

logger = logging.getLogger("review_agent.storage.redis")

ERRORS: Final = (RedisError, OSError)
"""What a Redis call may raise when Redis is down, slow or refusing: all degrade, none crash."""

MAX_IN_FLIGHT: Final = 64
"""Pipelined writes whose replies may be unread. Reaching it reads them all: this bounds how long
a Redis that stopped answering goes unnoticed by a process that only writes."""

_NO_GATE: Final = ("", "", "")


class _Unavailable:
    """Marker result of a Redis call that failed or was skipped (Redis down or backing off)."""

    def __repr__(self) -> str:
        return "UNAVAILABLE"


UNAVAILABLE: Final = _Unavailable()


class _Nonces:
    """Values no other write of any process uses (change markers, tokens, epochs, sessions): a
    random prefix per process and a counter. `secrets.token_hex` per call cost a system call,
    several times a superstep; a forked child draws a new prefix."""

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self._prefix = secrets.token_hex(6)
        self._count = itertools.count()

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._count):x}"


nonce: Final = _Nonces()


@dataclass
class TierStats:
    """Counters of what the tier did, for tests, `status` output and benchmarks.

    Shared by a saver and its `with_allowlist` clones (the compiled graph holds a clone). A
    pipelined write is counted when its reply is read; `RedisTierSaver.stats` reads them first.
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
    """put/put_writes that left the namespace uncached, or its entry unservable until the next
    put, because Redis could not (or need not) mirror them."""
    skipped: int = 0
    """Redis calls not made or failed because Redis was unavailable."""
    bumps: int = 0
    """Epoch replacements after a write that could not reach Redis or that Redis lost."""

    def count_write(self, result: Any) -> None:
        """Account for the reply of a write script (see `scripts` for the codes)."""
        try:
            code = int(result)
        except (TypeError, ValueError):
            return
        if code == 1:
            self.installs += 1
        elif code == 0:
            self.invalidations += 1
        elif code == -2:  # the session gate stopped it and replaced the epoch
            self.bumps += 1
            self.invalidations += 1


class Breaker:
    """Health of the link: down or not, when to try again, one warning per outage, and how many
    writes since the last epoch replacement did not reach Redis (`dirty`)."""

    def __init__(self, safe_url: str, secret: str, retry_after: float, clock: Callable[[], float]) -> None:
        self._safe_url = safe_url
        self._secret = secret
        self._retry_after = retry_after
        self._clock = clock
        self._lock = threading.Lock()
        self._down = False
        self._retry_at = 0.0
        self._warned = False
        self.dirty = 0

    def should_try(self) -> bool:
        return not self._down or self._clock() >= self._retry_at

    def failed(self, exc: BaseException, stats: TierStats, lost: int) -> None:
        """A call failed; `lost` writes (this one, unanswered pipelined ones) have an unknown
        outcome, so the epoch must be replaced before Redis is trusted again."""
        with self._lock:
            self._down = True
            self._retry_at = self._clock() + self._retry_after
            self.dirty += lost
            stats.skipped += 1
            warn, self._warned = not self._warned, True
        if warn:
            detail = f"{type(exc).__name__}: {exc}"
            if self._secret:
                detail = detail.replace(self._secret, "***")
            logger.warning(
                "Redis tier unavailable at %s (%s); using the durable checkpointer alone "
                "and retrying Redis every %.1fs",
                self._safe_url,
                detail,
                self._retry_after,
            )

    def skipped(self, stats: TierStats, *, write: bool) -> None:
        with self._lock:
            self.dirty += 1 if write else 0
            stats.skipped += 1

    def succeeded(self) -> None:
        if not self._down:
            return
        with self._lock:
            recovered, self._down, self._warned = self._down, False, False
        if recovered:
            logger.info("Redis tier at %s answers again", self._safe_url)

    def bumped(self, seen: int, stats: TierStats) -> None:
        # Only the failures seen before the bump are covered by it; one racing with the bump
        # keeps the count up so that the next command bumps again.
        with self._lock:
            self.dirty -= min(seen, self.dirty)
            stats.bumps += 1


class Link:
    """Connection, scripts, write session and health of one Redis URL, for one process.

    Why a separate object: `with_allowlist` makes shallow clones of the saver (LangGraph compiles
    a graph with one), and an outage, its single warning, the pending epoch bump and the write
    pipeline must be shared by all of them, not tracked per copy. Thread-safe: LangGraph saves
    pending writes and checkpoints from its executor's threads.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        session_ttl: int,
        socket_timeout: float,
        connect_timeout: float,
        retry_after: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.safe_url = redact_url(url)
        try:
            secret = urlsplit(url).password or ""
        except ValueError:
            secret = ""
        # Parses the URL now (no connection is made): a malformed REDIS_URL is a configuration
        # error to report at startup, not a failure to swallow at the first checkpoint. Short
        # timeouts and no client-side retries: an outage costs one failed attempt, after which
        # the link leaves Redis alone for `retry_after` seconds.
        self._pool = redis.ConnectionPool.from_url(
            url,
            retry=Retry(NoBackoff(), 0),
            socket_timeout=socket_timeout,
            socket_connect_timeout=connect_timeout,
            health_check_interval=0,
        )
        self._prefix = prefix
        self.epoch_key = f"{prefix}epoch"
        self._session_ttl = session_ttl
        self._clock = clock
        self.breaker = Breaker(self.safe_url, secret, retry_after, clock)
        self.stats = TierStats()
        self._io = threading.Lock()
        """Guards the connection, its replies in flight and the session; taken before the
        breaker's lock, never after it."""
        self._conn: AbstractConnection | None = None
        self._in_flight: deque[str] = deque()
        """Names of the pipelined writes whose replies are unread, oldest first."""
        self._session: str | None = None
        self._seq = 0
        self._last_send = 0.0
        self._stale_sessions: list[str] = []
        """Sessions of failed connections, closed by the next `_open`."""

    # -- health --------------------------------------------------------------------------------

    def available(self) -> bool:
        """False while backing off after a failure: callers skip the work of preparing a call."""
        return self.breaker.should_try()

    def skip_write(self) -> None:
        """Account for a write whose Redis step is not made (Redis backing off, or interrupted
        between the durable write and Redis): the epoch is replaced before Redis is trusted."""
        self.breaker.skipped(self.stats, write=True)

    # -- calls ---------------------------------------------------------------------------------

    def call(self, name: str, keys: Sequence[str], args: Sequence[Any], *, write: bool) -> Any:
        """Run one script and wait for its reply; `UNAVAILABLE` if Redis is down (a write then
        schedules an epoch bump). The replies of pipelined writes are read first."""
        if not self.breaker.should_try():
            self.breaker.skipped(self.stats, write=write)
            return UNAVAILABLE
        with self._io:
            try:
                conn = self._connection()
                self._drain(conn)
                if self.breaker.dirty or self._stale_sessions:
                    self._open(conn)
                if name in GATED:  # a write that is waited for takes no gate: KEYS[4] unused
                    keys, args = [*keys, self.epoch_key], [*_NO_GATE, *args]
                result = self._roundtrip(conn, name, keys, args)
            except ResponseError as exc:  # refused (OOM, a script error): the connection is fine
                self.breaker.failed(exc, self.stats, 1 if write else 0)
                return UNAVAILABLE
            except ERRORS as exc:
                self.breaker.failed(exc, self.stats, (1 if write else 0) + self._broken())
                return UNAVAILABLE
        self.breaker.succeeded()
        return result

    def send(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> None:
        """Pipeline one write script (one of `GATED`) without waiting for its reply.

        Returns once the command is in the socket; Redis applies it after every earlier command
        of this process, and its reply is read later (before the next command that needs a
        reply, when `MAX_IN_FLIGHT` are unread, and on `settle`/`close`) and only counted. The
        caller has committed the durable write already, and nothing it does next depends on
        Redis having applied this one.
        """
        if not self.breaker.should_try():
            self.breaker.skipped(self.stats, write=True)
            return
        with self._io:
            try:
                conn = self._connection()
                now = self._clock()
                if (
                    self._session is None
                    or self.breaker.dirty
                    or self._stale_sessions
                    or now - self._last_send > self._session_ttl / 2  # renewed before it expires
                ):
                    self._open(conn)
                    self.breaker.succeeded()
                seq = self._seq + 1
                gate = (str(self._seq), str(seq), str(self._session_ttl))
                packed = conn.pack_command(
                    "EVALSHA", SHAS[name], len(keys) + 1, *keys, self._session, *gate, *args
                )
                conn.send_packed_command(packed, check_health=False)
                self._seq, self._last_send = seq, now
                self._in_flight.append(name)
                if len(self._in_flight) >= MAX_IN_FLIGHT:
                    self._drain(conn)
            except ResponseError as exc:  # the session could not be opened (e.g. MISCONF)
                self.breaker.failed(exc, self.stats, 1)
            except ERRORS as exc:
                # This write and the unanswered ones before it may or may not have been applied.
                self.breaker.failed(exc, self.stats, 1 + self._broken())

    def settle(self) -> None:
        """Read the replies of the writes in flight: afterwards every write sent so far has been
        applied by Redis, or its failure is accounted for (an epoch bump is pending)."""
        if not self._in_flight:
            return
        with self._io:
            if self._conn is None:
                return
            try:
                self._drain(self._conn)
            except ERRORS as exc:
                self.breaker.failed(exc, self.stats, self._broken())

    def close(self) -> None:
        """Read what is still in flight, end the write session, close the connection."""
        with self._io:
            conn = self._conn
            if conn is None:
                return
            try:
                self._drain(conn)
                if self._session is not None:
                    conn.send_command("DEL", self._session, check_health=False)
                    conn.read_response()
                    self._session = None
            except ERRORS as exc:
                self.breaker.failed(exc, self.stats, self._broken())
                return
            self._conn = None
            conn.disconnect()

    # -- the connection (all with `_io` held) ------------------------------------------------------

    def _connection(self) -> AbstractConnection:
        conn = self._conn
        if conn is None:
            conn = self._pool.make_connection()
            try:
                conn.connect()
            except BaseException:
                conn.disconnect()
                raise
            self._conn = conn
        return conn

    def _broken(self) -> int:
        """Drop a failed connection. Returns how many pipelined writes it leaves unanswered:
        Redis may or may not have applied them."""
        lost = len(self._in_flight)
        self._in_flight.clear()
        if self._session is not None:
            self._stale_sessions.append(self._session)
            self._session = None
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.disconnect()
        return lost

    @staticmethod
    def _load_scripts(conn: AbstractConnection, names: Collection[str] = SCRIPTS.keys()) -> None:
        conn.send_packed_command(
            [part for name in names for part in conn.pack_command("SCRIPT", "LOAD", SCRIPTS[name])],
            check_health=False,
        )
        for _ in names:
            conn.read_response()

    def _roundtrip(
        self, conn: AbstractConnection, name: str, keys: Sequence[Any], args: Sequence[Any]
    ) -> Any:
        """Run a script and read its reply (nothing in flight); load the scripts if Redis lacks
        them (a restart, SCRIPT FLUSH) and try once more."""
        packed = conn.pack_command("EVALSHA", SHAS[name], len(keys), *keys, *args)
        conn.send_packed_command(packed, check_health=False)
        try:
            return conn.read_response()
        except NoScriptError:
            self._load_scripts(conn)
            conn.send_packed_command(packed, check_health=False)
            return conn.read_response()

    def _open(self, conn: AbstractConnection) -> None:
        """Start a write session: read what is in flight, make sure Redis has the scripts (a
        pipelined write that meets NOSCRIPT is lost), close the sessions of failed connections,
        and replace the epoch first if writes failed or were skipped."""
        self._drain(conn)
        conn.send_command("SCRIPT", "EXISTS", *SHAS.values(), check_health=False)
        exists = conn.read_response()
        missing = [name for name, there in zip(SCRIPTS, exists, strict=True) if not there]
        if missing:
            self._load_scripts(conn, missing)
        dirty = self.breaker.dirty
        session = f"{self._prefix}s:{nonce()}"
        # The current session, if any, has every write answered: closing it only tidies up.
        ended = [*self._stale_sessions, *([self._session] if self._session else [])]
        self._roundtrip(
            conn,
            "open",
            [self.epoch_key, session, *ended],
            [nonce(), "1" if dirty else "0", self._session_ttl],
        )
        if dirty:
            self.breaker.bumped(dirty, self.stats)
        self._stale_sessions.clear()
        self._session, self._seq, self._last_send = session, 0, self._clock()

    def _drain(self, conn: AbstractConnection) -> None:
        """Read the replies in flight, oldest first. A connection failure is raised, leaving the
        rest to `_broken`; a write Redis refused is accounted for here."""
        reload = False
        while self._in_flight:
            try:
                result = conn.read_response()
            except NoScriptError:
                # SCRIPT FLUSH: the write did not run, nor will a later one of the session be
                # applied on top of the gap (the gate). Reload, and bump before the next write.
                self._in_flight.popleft()
                self.breaker.skipped(self.stats, write=True)
                reload = True
                continue
            except ResponseError as exc:
                self._in_flight.popleft()
                self.breaker.failed(exc, self.stats, 1)
                continue
            self._in_flight.popleft()
            self.stats.count_write(result)
        if reload:  # after the loop: SCRIPT LOAD's replies come after those in flight
            self._load_scripts(conn)
