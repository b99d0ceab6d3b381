"""The Redis tier's Lua scripts, as named constants (the way checkpoint-postgres keeps its SQL).

Each script runs atomically on the server, which is what makes a refill's compare-and-set and a
put's "only if the cached entry is the parent" rule sound when several processes share Redis.
The key layout and the consistency argument they implement are in the package docstring.

Calling conventions
-------------------
The *write* scripts (`PUT`, `PUT_WRITES`, `INVALIDATE`) take the *write session gate* first:
``KEYS[4]`` is the session key, ``ARGV[1..3]`` the session's previous sequence number, this
write's own and the session key's TTL (all three empty: no gate, for a write whose caller waits
for the reply). A write runs only if every earlier write of its session was applied (see
`link.Link.send`); otherwise it answers -2 and replaces the epoch, since which namespace the
missing write touched is unknown here. Their own arguments start at ``ARGV[4]``.

Answers: 1 installed or merged | 0 invalidated or not cached | 2 older than the cached latest,
nothing to do | -2 stopped by the gate.
"""

from __future__ import annotations

import hashlib
from typing import Final

LIBRARY: Final = r"""
local function bump(ekey, nonce)
  local info = redis.call('INFO', 'server')
  local rid = string.match(info, 'run_id:(%x+)') or 'unknown'
  local ep = rid .. ':' .. nonce
  redis.call('SET', ekey, ep)
  return ep
end

-- The current epoch; a new one if Redis restarted since it was set (another run_id), so that
-- an entry restored from a snapshot taken before later writes is never served.
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

-- The epoch for a gated write: the key as it is. A write whose session gate passed runs on the
-- connection, hence the server run, that opened the session; entries it installs before a read
-- replaces a stale epoch (a restart from an old snapshot) are invalidated by that replacement.
-- Saves INFO on every write; a missing key (flush, eviction) falls back to `epoch`.
local function write_epoch(ekey, nonce)
  return redis.call('GET', ekey) or epoch(ekey, nonce)
end

-- Run `main` only if the session's previous write was applied; record this one as applied
-- only once `main` returned (a script that raises leaves a gap). A closed session ('x', its
-- connection failed) refuses every write of it that Redis reads late.
local function gated(nonce, main)
  if ARGV[1] == '' then return main() end
  local last = redis.call('GET', KEYS[4])
  if last ~= ARGV[1] then
    if last ~= 'x' then
      bump(KEYS[1], nonce)
      redis.call('SET', KEYS[4], ARGV[2], 'EX', ARGV[3])
    end
    return -2
  end
  local result = main()
  redis.call('SET', KEYS[4], ARGV[2], 'EX', ARGV[3])
  return result
end

local function usable(tkey, hkey, ns, ep)
  local tok = redis.call('HGET', tkey, 'n:' .. ns)
  if not tok then return false end
  local h = redis.call('HMGET', hkey, 'tok', 'ep')
  return h[1] == tok and h[2] == ep
end

-- Checkpoint ids (uuid6) sort in time order as strings.
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

local function hdel_list(hkey, t)
  local i = 1
  while i <= #t do
    local last = math.min(i + 199, #t)
    redis.call('HDEL', hkey, unpack(t, i, last))
    i = last + 1
  end
end
"""

READ: Final = (
    LIBRARY
    + r"""
-- KEYS: epoch, index, entry. ARGV: ns, nonce, wanted checkpoint id ('' = latest).
-- -> {1, HGETALL} hit | {2} valid entry but another checkpoint asked | {0, epoch, gen, change}
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

OBSERVE: Final = (
    LIBRARY
    + r"""
-- KEYS: epoch, index. ARGV: ns, nonce. -> {epoch, gen, change}: what a root put checks again
-- once its durable write is done (see PUT, mode 'root').
return {epoch(KEYS[1], ARGV[2]), redis.call('HGET', KEYS[2], 'g') or '',
        redis.call('HGET', KEYS[2], 'c:' .. ARGV[1]) or ''}
"""
)

REFILL: Final = (
    LIBRARY
    + r"""
-- KEYS: epoch, index, entry. ARGV: ns, nonce, epoch, gen, change (as READ observed them), ttl,
-- token, checkpoint id, then field/value pairs. -> 1 installed | 0 something changed meanwhile
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

PUT: Final = (
    LIBRARY
    + r"""
-- KEYS: epoch, index, entry, session. ARGV: the gate's three, ns, nonce, new id, ttl, token,
-- mode, legacy ('1' = checkpoint v < 4), the mode's two arguments, then field/value pairs.
-- 'inc' (a child): the parent id and a JSON {channel: version JSON} of the channels carried
--   over. Installed only if the cached entry is that parent and holds those
--   versions; the carried fields stay where they are (no copy) and only what the child no
--   longer has is deleted, so a superstep costs Redis what it changed, not the size of the
--   state. Anything else invalidates: the next read refills from the durable saver.
-- 'root' (no parent): '<epoch>\n<gen>\n<change>' as OBSERVE saw them before the durable
--   write, and '{}'; installed only if none changed meanwhile, so that a root put
--   cannot bring back a thread that another process deleted after this durable write.
local ns, nonce, newid, ttl, tok, mode = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local T, H = KEYS[2], KEYS[3]
return gated(nonce, function()
  local ep = write_epoch(KEYS[1], nonce)
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
  if mode == 'inc' then
    if (not hid) or hid ~= ARGV[11] then return invalidate() end
    if ARGV[10] == '1' and redis.call('HGET', H, 'tw') then return invalidate() end
    local names, wanted = {}, {}
    for ch, ver in pairs(cjson.decode(ARGV[12])) do
      names[#names + 1] = 'V:' .. ch
      wanted[#wanted + 1] = ver
    end
    local i = 1
    while i <= #names do
      local last = math.min(i + 199, #names)
      local got = redis.call('HMGET', H, unpack(names, i, last))
      for j = i, last do
        if got[j - i + 1] ~= wanted[j] then return invalidate() end
      end
      i = last + 1
    end
    -- Fields that stay: the carried channels' (v: and V:) and those this put sets. Of the
    -- others, channel fields, pending writes and the wx/tw flags go.
    local keep = {}
    for _, name in ipairs(names) do
      keep[name] = true
      keep['v' .. string.sub(name, 2)] = true
    end
    for j = 13, #ARGV, 2 do keep[ARGV[j]] = true end
    local drop = {}
    for _, f in ipairs(redis.call('HKEYS', H)) do
      if not keep[f] then
        local p = string.sub(f, 1, 2)
        if p == 'v:' or p == 'V:' or p == 'w:' or f == 'wx' or f == 'tw' then
          drop[#drop + 1] = f
        end
      end
    end
    hdel_list(H, drop)
  else
    local seen = {}
    for part in string.gmatch(ARGV[11] .. '\n', '([^\n]*)\n') do seen[#seen + 1] = part end
    if ep ~= seen[1] or (redis.call('HGET', T, 'g') or '') ~= seen[2]
        or (redis.call('HGET', T, 'c:' .. ns) or '') ~= seen[3] then
      return invalidate()
    end
    redis.call('DEL', H)
  end
  redis.call('HSET', H, 'tok', tok, 'ep', ep, 'st', 'ok', 'id', newid)
  hset_list(H, ARGV, 13)
  redis.call('HSET', T, 'n:' .. ns, tok, 'c:' .. ns, nonce)
  if o then redis.call('HDEL', T, 'o:' .. ns) end
  redis.call('EXPIRE', T, ttl)
  redis.call('EXPIRE', H, ttl)
  return 1
end)
"""
)

PUT_WRITES: Final = (
    LIBRARY
    + r"""
-- KEYS: epoch, index, entry, session. ARGV: the gate's three, ns, nonce, checkpoint id, ttl,
-- mode, tasks-write ('1'/'0'), then field/value pairs.
-- Modes: 'merge' (insert-or-ignore per field), 'overwrite' (every write of the call is to a
-- special channel: they replace earlier ones), 'demote' (no fields: the writes are not sent,
-- the entry stops being served until a put replaces it - see `RedisTierSaver.put_writes`).
-- Merged only into a write-through entry of that checkpoint (a refilled one has no task paths
-- to order by: it is demoted to 'base'); writes of a checkpoint not cached are remembered in
-- 'o:' so that its put, arriving later, is not installed without them.
local ns, nonce, cid, ttl, mode = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local T, H = KEYS[2], KEYS[3]
return gated(nonce, function()
  local ep = write_epoch(KEYS[1], nonce)
  local base = usable(T, H, ns, ep)
  redis.call('HSET', T, 'c:' .. ns, nonce)
  redis.call('EXPIRE', T, ttl)
  if base then
    local h = redis.call('HMGET', H, 'id', 'st', 'wx')
    if h[1] == cid then
      if ARGV[9] == '1' then redis.call('HSET', H, 'tw', '1') end
      if h[2] == 'ok' and not h[3] and mode ~= 'demote' then
        for i = 10, #ARGV, 2 do
          if mode == 'overwrite' then
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
end)
"""
)

INVALIDATE: Final = (
    LIBRARY
    + r"""
-- KEYS: epoch, index, entry, session. ARGV: the gate's three, ns, nonce, ttl. Forget the
-- namespace's entry: a put the cache cannot mirror exactly, a durable write that failed.
return gated(ARGV[5], function()
  redis.call('HDEL', KEYS[2], 'n:' .. ARGV[4])
  redis.call('HSET', KEYS[2], 'c:' .. ARGV[4], ARGV[5])
  redis.call('EXPIRE', KEYS[2], ARGV[6])
  return 0
end)
"""
)

TOMBSTONE: Final = r"""
-- KEYS: epoch, index. ARGV: entry key prefix, new generation, ttl. Drop every cached namespace
-- of the thread and leave a tombstone generation, so that no refill or root put observed
-- before it can succeed.
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

BUMP: Final = (
    LIBRARY
    + r"""
-- KEYS: epoch. ARGV: nonce. Invalidate every entry under this prefix at once.
bump(KEYS[1], ARGV[1])
return 1
"""
)

OPEN: Final = (
    LIBRARY
    + r"""
-- KEYS: epoch, the new session key, then the keys of earlier sessions to close. ARGV: nonce,
-- '1' to replace the epoch first, the session keys' TTL. Starts a write session; a closed
-- session ('x') refuses every write of it that Redis reads later.
if ARGV[2] == '1' then bump(KEYS[1], ARGV[1]) end
for i = 3, #KEYS do redis.call('SET', KEYS[i], 'x', 'EX', ARGV[3]) end
redis.call('SET', KEYS[2], '0', 'EX', ARGV[3])
return 1
"""
)

SCRIPTS: Final[dict[str, str]] = {
    "read": READ,
    "observe": OBSERVE,
    "refill": REFILL,
    "put": PUT,
    "put_writes": PUT_WRITES,
    "invalidate": INVALIDATE,
    "tombstone": TOMBSTONE,
    "bump": BUMP,
    "open": OPEN,
}

SHAS: Final[dict[str, str]] = {name: hashlib.sha1(src.encode()).hexdigest() for name, src in SCRIPTS.items()}
"""EVALSHA names of the scripts (Redis names a loaded script by the SHA-1 of its source)."""

GATED: Final = frozenset({"put", "put_writes", "invalidate"})
"""Scripts that take the write session gate's key and three arguments first."""
