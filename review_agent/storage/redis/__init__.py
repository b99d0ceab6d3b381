"""The Redis hot tier: a write-through cache of each thread's latest checkpoint on plain Redis 7.

`RedisTierSaver` wraps a durable checkpointer (PostgresSaver or SqliteSaver) and keeps, per thread
and checkpoint namespace, the latest checkpoint and its pending writes in Redis, so that the reads
a resume or a `status` makes are answered without a database query. It needs no Redis module (no
RedisJSON, no RediSearch): only hashes, strings and Lua scripts.

Writes go to the durable saver first and to Redis second; reads try Redis and fall back to the
durable saver on a miss, an eviction, a flush, a restart or an outage, refilling Redis on a miss.
`list`, history and every maintenance call go to the durable saver.

Modules: `scripts` (the Lua scripts), `link` (the connection, its pipelined writes and write
sessions, the circuit breaker), `encoding` (checkpoints as hash fields), `saver` (the saver).

Write path
----------
A write's Redis step is *pipelined*: once the durable saver has committed, one script call is
written to this process's own connection and the method returns without waiting for Redis'
reply. Redis applies the calls of one connection in the order they were sent; the replies are
read later, before any call that needs one (a read, a delete), once `link.MAX_IN_FLIGHT` are
unread, and on `flush`/`close`. A superstep thus costs Redis two commands (its pending writes,
its checkpoint) and no round trip.

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

``P s:SID`` (string, TTL) - one write session (a connection of one process): the sequence number
    of its last applied write, or ``x`` once closed.

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
1. *No finished write is lost, and Redis never leads.* A `put`, `put_writes`, `delete_*`,
   `copy_thread` or `prune` sends its Redis step only after the durable saver has committed it:
   Redis is never the only copy of anything, nor newer than the durable saver. If Redis fails, the
   call still succeeds from the durable write.

2. *A cache hit equals the durable saver's answer.* An entry is served only if its token matches
   the index, its epoch is current and it is marked ``ok``. It is written in two ways, both by
   atomic Lua scripts:

   - *Write-through* (`put`, `put_writes`): the entry is built from the arguments, normalised as the
     durable saver normalises them (metadata merged from the config and JSON round-tripped for the
     SQL savers). A child `put` is installed only when the cached entry is its parent (only the
     new channel versions are sent). A root `put` (no parent) is installed only if the epoch, the
     thread's generation and the namespace's change nonce are those observed just before its
     durable write: otherwise another process may have deleted the thread (or written to it)
     after that write, and installing it would bring back a deleted checkpoint. Anything else
     invalidates the entry instead of guessing: a cold cache (the durable saver may hold newer
     state than Redis knows), a fork, channel values without a version, legacy (v < 4)
     checkpoints whose parent had pending sends, a checkpoint id that already received writes.
     Writes are merged only into an entry built by write-through, with the durable savers'
     conflict rule (insert-or-ignore per task and index; overwrite when all writes of a call are
     special channels), and read back in `(task_path, task_id, idx)` order like theirs.
   - *Refill* after a miss: the tuple the durable saver returned is stored. The script installs it
     only if the epoch, the thread generation and the namespace's change nonce are those observed
     before the durable read: any write, delete or bump applied in between replaces one of them,
     so a refill can never put back a state older than a write Redis has applied. A refill that
     Redis applies before a pipelined write still in flight is corrected by it: a put of the
     child replaces the refilled entry, writes to it demote it.

3. *Failures invalidate instead of going stale.* Scripts are atomic, so an entry is never half
   written by a script that completes. A write that Redis refused or lost stops the later writes
   of its session and replaces the epoch (`link`'s write sessions); if a write's Redis step fails
   or is skipped (outage), the link replaces the epoch the next time Redis answers, before any
   other command, which invalidates every entry at once. A durable write that raises (it may have
   been applied in part) invalidates its namespace, and a delete, copy or prune drops the thread
   from Redis even if it failed part-way. Eviction or expiry of the index makes all of a thread's
   entries invalid; eviction of an entry is a miss; a flush is a miss everywhere; a Redis restart
   changes the epoch.

Loss window
-----------
Redis can hold an *older* state of a namespace than the durable saver - never a newer or a mixed
one - and serve it to other processes until the TTL, a restart of Redis or the next write of that
namespace, in two cases:

(a) the process dies after a durable write and before Redis has read its Redis step. A pipelined
    write's call returns once the command is in the kernel's socket buffer; with Redis on the same
    host it is then in Redis' own receive buffer and is applied even if the process is killed
    right after (checked with SIGKILL); with a remote Redis, bytes this host has not sent yet when
    the process dies are lost. Waiting for each reply would close the window when the call
    returns instead - at the measured cost of a round trip and a GIL hand-over per write.
(b) Redis stops answering this process (a stall, a partition, a refusal) and the process ends
    before Redis answers it again. While the process lives this is noticed - at its next read,
    after `link.MAX_IN_FLIGHT` unanswered writes, or at `close`, each within `socket_timeout` - and
    the epoch is replaced with the first command once Redis answers again (tried every
    `retry_after`).

Nothing is lost - the durable saver has the newer state and `list` shows it - but a reader resumes
from the older one: it redoes those steps (review_agent's nodes are idempotent: a finished file's
review is in the store, posting is deduplicated by fingerprints). Keep `ttl_seconds` short where
older states matter.

Concurrency: writes to one namespace may be concurrent (parallel tasks' `put_writes`); a read
concurrent with a write may see it or not, as with the durable saver - and a pipelined write is
concurrent with other processes' reads until Redis has applied it, just after its call returned.
One process always reads its own writes (they precede its reads on its connection). Standalone
Redis only: the thread scripts touch keys named from the index (not Redis Cluster safe).
"""

from review_agent.storage.redis.link import TierStats
from review_agent.storage.redis.saver import RedisTierSaver

__all__ = ["RedisTierSaver", "TierStats"]
