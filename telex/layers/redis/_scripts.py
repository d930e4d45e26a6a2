"""The Lua scripts of the Redis layer: each step that must be atomic is one script.

Every script is run one way, ``EVALSHA`` on the layer's own connections
(``_threads``, ``_loops``), and loaded with ``SCRIPT LOAD`` when Redis
answers ``NOSCRIPT`` (``_health.reply_error``).

Stored entry format (one list element per message, the message stored once):
``DEADLINE CHANNEL " " PAYLOAD`` where DEADLINE is 13 ASCII digits (Unix time
in milliseconds at which the message expires), CHANNEL the full channel name
(needed for ``prefix!local`` names, which share one list) and PAYLOAD the
msgpack (optionally Fernet-encrypted) message. A space cannot occur in a
channel name, so the first space after the deadline ends the name.

A group send writes, per ``prefix!`` queue, a group entry instead:
``DEADLINE "#1" PREFIX " " NAMES "\\n" PAYLOAD`` where NAMES are the members'
parts after PREFIX, separated by spaces. "#" cannot start a channel name, so
one byte tells the kinds apart; "1" is the format version (``_take`` refuses
others rather than guess).

Times come from the caller's clock (``ARGV``), not Redis ``TIME``: that keeps
scripts deterministic and saves a command per call; hosts need NTP-synced clocks.
"""

from __future__ import annotations

import hashlib
from typing import Any

import hiredis

# Push ``entry`` onto ``key`` unless the list is at capacity. Expired messages
# never count against capacity: when the push overflows, expired heads are
# dropped and the push is tried again. RPUSH returns the new length, so the
# common (not full) case costs RPUSH + PEXPIRE and nothing else.
_OVERFLOWED = """
-- The push made the list longer than capacity: take it back, drop expired
-- heads, and push again if that made room. -> 1 pushed, 0 full.
local function overflowed(key, entry, capacity, now, ttl)
  redis.call('RPOP', key)
  local dropped = 0
  while dropped < capacity do
    local head = redis.call('LINDEX', key, 0)
    if not head or tonumber(string.sub(head, 1, 13)) > now then break end
    redis.call('LPOP', key)
    dropped = dropped + 1
  end
  if dropped == 0 or redis.call('LLEN', key) >= capacity then return 0 end
  redis.call('RPUSH', key, entry)
  redis.call('PEXPIRE', key, ttl)
  return 1
end
"""

_PUSH = """
local function push(key, entry, capacity, now, ttl)
  if redis.call('RPUSH', key, entry) > capacity then return overflowed(key, entry, capacity, now, ttl) end
  redis.call('PEXPIRE', key, ttl)
  return 1
end
"""

#: Group scripts only (the send script stays as small as it can be).
_PUSH_MANY = """
-- Several entries for one queue in one RPUSH (a group's names past one
-- entry's share): the first that fit go in, as push would take them one by
-- one. -> how many went in.
local function push_many(key, entries, capacity, now, ttl)
  if #entries == 1 then return push(key, entries[1], capacity, now, ttl) end
  local room = capacity - redis.call('LLEN', key)
  while room < #entries do
    local head = redis.call('LINDEX', key, 0)
    if not head or tonumber(string.sub(head, 1, 13)) > now then break end
    redis.call('LPOP', key)
    room = room + 1
  end
  local n = math.min(room, #entries)
  if n <= 0 then return 0 end
  for first = 1, n, 1000 do
    redis.call('RPUSH', key, unpack(entries, first, math.min(first + 999, n)))
  end
  redis.call('PEXPIRE', key, ttl)
  return n
end
"""

#: KEYS[1] queue list. ARGV: capacity, key ttl_ms, entry, now_ms. → 1 sent, 0 full.
#: The per-queue arguments come first so a sender packs them once
#: (``send_head``); ``now`` is read only when the push overflows.
SEND = (
    _OVERFLOWED
    + """
if redis.call('RPUSH', KEYS[1], ARGV[3]) > tonumber(ARGV[1]) then
  return overflowed(KEYS[1], ARGV[3], tonumber(ARGV[1]), tonumber(ARGV[4]), ARGV[2])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
)

#: KEYS: queue lists on this shard. ARGV: now_ms, ttl_ms, deadline (13
#: digits), payload, then (head, capacity, members) per key: each entry is
#: deadline .. head .. payload, where head is a member's name and a space or a
#: group entry's head (``_codec.group_head``). A full queue is skipped.
#: → members not reached.
GROUP_PUSH = (
    _OVERFLOWED
    + _PUSH
    + _PUSH_MANY
    + """
local now, ttl, deadline, payload = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
local missed, i = 0, 1
while i <= #KEYS do
  -- Entries for the same queue (one prefix's names, in parts) come together: one push.
  local entries, sizes, j = {}, {}, i
  while j <= #KEYS and KEYS[j] == KEYS[i] do
    local at = 2 + 3 * j
    entries[#entries + 1] = deadline .. ARGV[at] .. payload
    sizes[#sizes + 1] = tonumber(ARGV[at + 2])
    j = j + 1
  end
  local pushed = push_many(KEYS[i], entries, tonumber(ARGV[2 + 3 * i + 1]), now, ttl)
  for k = pushed + 1, #entries do missed = missed + sizes[k] end
  i = j
end
return missed
"""
)

#: One round trip for a whole group when there is one shard and no capacity
#: overrides (the common set-up): the script derives each member's queue and
#: capacity itself, and writes one entry per ``prefix!`` queue (several past
#: ARGV[8] names) naming its members. KEYS[1] group zset. ARGV: now_ms,
#: ttl_ms, deadline, payload, queue key prefix, capacity, process-local
#: capacity, names per group entry. → members not reached (full queues).
GROUP_SEND_LOCAL = (
    _OVERFLOWED
    + _PUSH
    + _PUSH_MANY
    + """
local now, ttl, deadline, payload = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
local queues, capacity, local_capacity = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local chunk = tonumber(ARGV[8])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local missed, by_prefix, prefixes = 0, {}, {}
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local bang = string.find(member, '!', 1, true)
  if bang then
    local prefix = string.sub(member, 1, bang)
    local names = by_prefix[prefix]
    if not names then
      names = {}
      by_prefix[prefix] = names
      prefixes[#prefixes + 1] = prefix
    end
    names[#names + 1] = string.sub(member, bang + 1)
  else
    missed = missed + 1 - push(queues .. member, deadline .. member .. ' ' .. payload, capacity, now, ttl)
  end
end
for _, prefix in ipairs(prefixes) do
  local names, entries, sizes = by_prefix[prefix], {}, {}
  for first = 1, #names, chunk do
    local last = math.min(first + chunk - 1, #names)
    local head = '#1' .. prefix .. ' ' .. table.concat(names, ' ', first, last) .. '\\n'
    entries[#entries + 1] = deadline .. head .. payload
    sizes[#sizes + 1] = last - first + 1
  end
  local pushed = push_many(queues .. prefix, entries, local_capacity, now, ttl)
  for k = pushed + 1, #entries do missed = missed + sizes[k] end
end
return missed
"""
)

#: KEYS[1] group zset. ARGV: now_ms. → live members (expired ones removed).
GROUP_MEMBERS = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""

#: KEYS: queue lists. ARGV: now_ms, max messages. → up to that many entries,
#: oldest head first across the keys (a busy channel cannot starve a quiet
#: one); expired entries met on the way are dropped, but for group entries.
RECEIVE = """
local now, want = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
if #KEYS == 1 then
  while #out < want do
    local entry = redis.call('LPOP', KEYS[1])
    if not entry then break end
    if tonumber(string.sub(entry, 1, 13)) > now or string.byte(entry, 14) == 35 then out[#out + 1] = entry end
  end
  return out
end
local heads = {}
for i = 1, #KEYS do heads[i] = redis.call('LINDEX', KEYS[i], 0) end
while #out < want do
  local best, best_deadline = nil, nil
  for i = 1, #KEYS do
    local head = heads[i]
    if head then
      local deadline = tonumber(string.sub(head, 1, 13))
      if not best or deadline < best_deadline then best, best_deadline = i, deadline end
    end
  end
  if not best then break end
  redis.call('LPOP', KEYS[best])
  -- Expired group entries go out too: the reader counts their members as lost.
  if best_deadline > now or string.byte(heads[best], 14) == 35 then out[#out + 1] = heads[best] end
  if #out < want then heads[best] = redis.call('LINDEX', KEYS[best], 0) end
end
return out
"""

# -- telex.ordering ---------------------------------------------------------------
# Per sequence K: hash PREFIX o:K (field "next" = next expected order, field
# "p<order>" = parked record "QUEUEKEY\nCHANNEL\nPAYLOAD"), zset PREFIX op:K
# (parked order -> parked time), and one zset PREFIX ostall per shard
# (K -> oldest parked time) so skip_stalled finds stalled sequences without SCAN.
# QUEUEKEY is empty when the channel's queue lives on another shard: the
# script then returns the message and the caller pushes it there.

_REQUEUE = """
local function requeue(state, parked, order, now, expiry_ms)
  local record = redis.call('HGET', state, 'p' .. order)
  if not record then return false end
  redis.call('HDEL', state, 'p' .. order)
  redis.call('ZREM', parked, order)
  local a = string.find(record, '\\n', 1, true)
  local b = string.find(record, '\\n', a + 1, true)
  local queue = string.sub(record, 1, a - 1)
  local channel, payload = string.sub(record, a + 1, b - 1), string.sub(record, b + 1)
  if queue == '' then return {channel, payload} end
  -- Requeued at the front: it was admitted once already, so capacity is not
  -- charged again and it does not wait behind newer messages.
  redis.call('LPUSH', queue, string.format('%013d', now + expiry_ms) .. channel .. ' ' .. payload)
  redis.call('PEXPIRE', queue, expiry_ms + 1000)
  return false
end
local function restall(parked, stall, key)
  local oldest = redis.call('ZRANGE', parked, 0, 0, 'WITHSCORES')
  if oldest[2] then redis.call('ZADD', stall, oldest[2], key) else redis.call('ZREM', stall, key) end
end
"""

#: KEYS: state, parked, stall. ARGV: order, record, now_ms, state ttl_ms, K.
ORDERING_CLAIM = """
local order = tonumber(ARGV[1])
local expected = tonumber(redis.call('HGET', KEYS[1], 'next') or '0')
if order == expected then return 'run' end
if order < expected then return 'drop' end
redis.call('HSET', KEYS[1], 'next', expected, 'p' .. order, ARGV[2])
redis.call('ZADD', KEYS[2], 'NX', ARGV[3], order)
local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
redis.call('ZADD', KEYS[3], oldest[2], ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 'park'
"""

#: KEYS: state, parked, stall. ARGV: order, now_ms, expiry_ms, state ttl_ms, K.
#: → nil, or {channel, payload} to push on another shard.
ORDERING_ADVANCE = (
    _REQUEUE
    + """
local expected = math.max(tonumber(redis.call('HGET', KEYS[1], 'next') or '0'), tonumber(ARGV[1]) + 1)
redis.call('HSET', KEYS[1], 'next', expected)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
local moved = requeue(KEYS[1], KEYS[2], expected, tonumber(ARGV[2]), tonumber(ARGV[3]))
restall(KEYS[2], KEYS[3], ARGV[5])
return moved
"""
)

#: KEYS[1] stall zset. ARGV: cutoff_ms, now_ms, expiry_ms, state ttl_ms, key prefix.
#: → {K, expected, resumed, channel or nil, payload or nil} per skipped sequence.
ORDERING_SKIP_STALLED = (
    _REQUEUE
    + """
local out = {}
for _, key in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])) do
  local state, parked = ARGV[5] .. 'o:' .. key, ARGV[5] .. 'op:' .. key
  local lowest = nil
  for _, order in ipairs(redis.call('ZRANGE', parked, 0, -1)) do
    order = tonumber(order)
    if not lowest or order < lowest then lowest = order end
  end
  if lowest then
    local expected = tonumber(redis.call('HGET', state, 'next') or '0')
    redis.call('HSET', state, 'next', lowest)
    redis.call('PEXPIRE', state, ARGV[4])
    local moved = requeue(state, parked, lowest, tonumber(ARGV[2]), tonumber(ARGV[3]))
    restall(parked, KEYS[1], key)
    out[#out + 1] = {key, expected, lowest, moved and moved[1] or false, moved and moved[2] or false}
  else
    redis.call('ZREM', KEYS[1], key)
  end
end
return out
"""
)

#: Every script by name, and its SHA1 for ``EVALSHA``.
SOURCES = {
    "send": SEND,
    "receive": RECEIVE,
    "group_push": GROUP_PUSH,
    "group_send_local": GROUP_SEND_LOCAL,
    "group_members": GROUP_MEMBERS,
    "ordering_claim": ORDERING_CLAIM,
    "ordering_advance": ORDERING_ADVANCE,
    "ordering_skip_stalled": ORDERING_SKIP_STALLED,
}
SHAS = {name: hashlib.sha1(source.encode()).hexdigest().encode() for name, source in SOURCES.items()}


def pack(*args: Any) -> bytes:
    """One command in RESP (hiredis's packer: bytes, str, int and float arguments)."""
    return hiredis.pack_command(args)


def pack_eval(name: str, keys: list[str], args: list[Any]) -> bytes:
    """The packed ``EVALSHA`` that runs script ``name``."""
    return pack(b"EVALSHA", SHAS[name], len(keys), *keys, *args)


def send_head(key: str, capacity: int, ttl_ms: int) -> bytes:
    """The packed ``EVALSHA`` of SEND up to its per-message arguments (what ``send_command`` ends).

    Worked out once per queue key: hiredis packing all eight arguments per
    message cost more than the rest of a send's framing together.
    """
    packed = pack(b"EVALSHA", SHAS["send"], 1, key, capacity, ttl_ms)
    return b"*8" + packed[packed.index(b"\r\n") :]  # two arguments follow


def send_tail(deadline_ms: int, channel: bytes, payload: bytes, now_ms: int) -> bytes:
    """The rest of a packed SEND: the entry (``_codec.frame_entry``'s bytes) and now."""
    return b"$%d\r\n%013d%s%s\r\n$13\r\n%013d\r\n" % (
        13 + len(channel) + len(payload),
        deadline_ms,
        channel,
        payload,
        now_ms,
    )


def blpop_timeout(seconds: float) -> float:
    """``BLPOP``'s timeout argument: its 0 means "forever"; Redis 6 takes fractional seconds."""
    return max(round(seconds, 3), 0.01)
