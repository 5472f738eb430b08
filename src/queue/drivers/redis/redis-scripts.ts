/**
 * The Lua scripts behind the Redis driver. Each one runs atomically on the server, so a message
 * is never in two places (stream and delay set, pending list and dead letters) at once.
 *
 * KEYS[1] is the queue's base key `<prefix>:{<queue>}`; the scripts derive the other keys from
 * it. The braces make every key of one queue hash to the same cluster slot.
 *
 * Keys under the base:
 *   :levels     sorted set of the priority levels in use (member and score = priority)
 *   :s:<level>  one stream per priority level, consumer group `taskq`
 *   :delayed    sorted set of delayed messages (score = due time in ms, member = encoded message)
 *   :dedup:<k>  the id of the live message published with deduplication key k
 *   :dead       dead-letter stream
 *   :paused     present while the queue is paused
 *   :ctl        short stream that wakes blocked consumers (new level, resume, earlier delay)
 *   :alive:<c>  present while consumer c lives (a TTL its driver keeps renewing); the pending
 *               entries of a consumer without one are taken over at once, not after the lease
 *   :epoch      a random value the drivers write when they first use the queue; gone or changed
 *               means the server lost the queue's keys (a restart without persistence, a flush)
 *
 * A stream entry holds the fields i (message id), a (attempt), c (deliveries before this entry),
 * k (deduplication key or ''), d (JSON of body and headers). Nack and release add a new entry and
 * delete the old one, so the stream's own delivery counter restarts and `c` carries the total.
 */

const COMMON = `
local B = KEYS[1]
local GROUP = 'taskq'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function stream(level) return B .. ':s:' .. level end

local function ensureLevel(level)
  if redis.call('ZADD', B .. ':levels', 'NX', level, level) == 1 then
    redis.pcall('XGROUP', 'CREATE', stream(level), GROUP, '0', 'MKSTREAM')
    redis.call('XADD', B .. ':ctl', 'MAXLEN', '~', '16', '*', 'e', 'level')
  end
end

local function wake(reason)
  redis.call('XADD', B .. ':ctl', 'MAXLEN', '~', '16', '*', 'e', reason)
end

-- m = { id, level, attempt, deliveries, dedupKey, data }
local function enqueue(m, delayMs)
  if delayMs > 0 then
    local due = now + delayMs
    local first = redis.call('ZRANGE', B .. ':delayed', 0, 0, 'WITHSCORES')
    redis.call('ZADD', B .. ':delayed', due, cjson.encode(m))
    -- A consumer blocked until the old earliest due time must wake for this earlier one.
    if #first == 0 or tonumber(first[2]) > due then wake('delay') end
  else
    ensureLevel(m[2])
    redis.call('XADD', stream(m[2]), '*', 'i', m[1], 'a', m[3], 'c', m[4], 'k', m[5], 'd', m[6])
  end
end

local function fieldsOf(entry)
  local f = {}
  for j = 1, #entry, 2 do f[entry[j]] = entry[j + 1] end
  return f
end
`;

/**
 * ARGV: count, then per message: id, level, attempt, dedupKey ('' for none), data, delayMs.
 * Returns one id per message: its own, or the live message's id when deduplicated.
 */
export const PUBLISH_SCRIPT = `${COMMON}
local ids = {}
local n = tonumber(ARGV[1])
for i = 0, n - 1 do
  local o = 1 + i * 6
  local id, key = ARGV[o + 1], ARGV[o + 4]
  local existing = false
  if key ~= '' then
    if not redis.call('SET', B .. ':dedup:' .. key, id, 'NX') then
      existing = redis.call('GET', B .. ':dedup:' .. key)
    end
  end
  if existing then
    ids[#ids + 1] = existing
  else
    enqueue({ id, ARGV[o + 2], ARGV[o + 3], '0', key, ARGV[o + 5] }, tonumber(ARGV[o + 6]))
    ids[#ids + 1] = id
  end
end
return ids
`;

/**
 * Moves due delayed messages to their streams, then (unless the queue is paused) takes up to
 * `credit` entries for this consumer: first entries whose lease expired (XAUTOCLAIM, only when
 * ARGV[4] is '1'), then new ones, highest priority level first. When ARGV[6] is '1' it first takes
 * over the pending entries of consumers whose heartbeat key expired (their process died), so
 * they run again within the heartbeat's TTL instead of the lease.
 * ARGV: consumer, credit, leaseMs, reclaim, heartbeat TTL ms, takeOverDead.
 * Returns { paused, msUntilNextDue (-1 none), entries, wakeKeys, wakeIds } where each entry is
 * { level, entryId, streamDeliveries, fields } and the wake lists (filled only when nothing was
 * taken) say where a blocking XREAD must start to see only what arrives later.
 */
export const FETCH_SCRIPT = `${COMMON}
local consumer, credit, leaseMs = ARGV[1], tonumber(ARGV[2]), ARGV[3]
-- This consumer's heartbeat, renewed with every fetch (and by its driver's timer in between).
redis.call('SET', B .. ':alive:' .. consumer, '1', 'PX', ARGV[5])
local due = redis.call('ZRANGEBYSCORE', B .. ':delayed', '-inf', now, 'LIMIT', 0, 1000)
for _, member in ipairs(due) do
  redis.call('ZREM', B .. ':delayed', member)
  enqueue(cjson.decode(member), 0)
end
local paused = redis.call('EXISTS', B .. ':paused')
local levels = redis.call('ZREVRANGE', B .. ':levels', 0, -1)
local out = {}
local function take(level, claimed)
  for _, e in ipairs(claimed) do
    if e and e[2] then
      local p = redis.call('XPENDING', stream(level), GROUP, e[1], e[1], 1)
      out[#out + 1] = { level, e[1], p[1][4], e[2] }
      credit = credit - 1
    end
  end
end
if paused == 0 and ARGV[6] == '1' then
  for _, level in ipairs(levels) do
    if credit <= 0 then break end
    local summary = redis.pcall('XPENDING', stream(level), GROUP)
    if type(summary) == 'table' and not summary.err and type(summary[4]) == 'table' then
      for _, holder in ipairs(summary[4]) do
        if credit <= 0 then break end
        local owner = holder[1]
        if owner ~= consumer and redis.call('EXISTS', B .. ':alive:' .. owner) == 0 then
          local ids = {}
          for _, p in ipairs(redis.call('XPENDING', stream(level), GROUP, '-', '+', math.min(credit, 1000), owner)) do
            ids[#ids + 1] = p[1]
          end
          if #ids > 0 then
            take(level, redis.call('XCLAIM', stream(level), GROUP, consumer, 0, unpack(ids)))
          end
          if tonumber(holder[2]) <= #ids then
            redis.call('XGROUP', 'DELCONSUMER', stream(level), GROUP, owner)
          end
        end
      end
    end
  end
end
if paused == 0 and ARGV[4] == '1' then
  for _, level in ipairs(levels) do
    local cursor = '0-0'
    repeat
      if credit <= 0 then break end
      local r = redis.pcall('XAUTOCLAIM', stream(level), GROUP, consumer, leaseMs, cursor, 'COUNT', credit)
      if r.err then break end
      cursor = r[1]
      take(level, r[2])
    until cursor == '0-0'
  end
end
if paused == 0 then
  for _, level in ipairs(levels) do
    if credit <= 0 then break end
    local r = redis.pcall('XREADGROUP', 'GROUP', GROUP, consumer, 'COUNT', credit, 'STREAMS', stream(level), '>')
    if type(r) == 'table' and r.err then
      -- The stream lost its group (keys deleted, server restarted without persistence).
      redis.pcall('XGROUP', 'CREATE', stream(level), GROUP, '0', 'MKSTREAM')
    elseif r then
      for _, e in ipairs(r[1][2]) do
        out[#out + 1] = { level, e[1], 1, e[2] }
        credit = credit - 1
      end
    end
  end
end
local wakeKeys, wakeIds = {}, {}
if #out == 0 then
  local keys = { B .. ':ctl' }
  if paused == 0 then
    for _, level in ipairs(levels) do keys[#keys + 1] = stream(level) end
  end
  for _, key in ipairs(keys) do
    local last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
    wakeKeys[#wakeKeys + 1] = key
    wakeIds[#wakeIds + 1] = (last[1] and last[1][1]) or '0-0'
  end
end
local nextDue = -1
local first = redis.call('ZRANGE', B .. ':delayed', 0, 0, 'WITHSCORES')
if #first > 0 then nextDue = math.max(0, tonumber(first[2]) - now) end
return { paused, nextDue, out, wakeKeys, wakeIds }
`;

/**
 * Settles deliveries in one batch. ARGV: per op 6 values: op (a ack, n nack, r release,
 * d dead-letter, x extend lease), level, entryId, consumer, streamDeliveries, extra (nack delay,
 * dead-letter reason, lease idle ms). An op applies only if the entry is still pending for that
 * consumer with the same delivery count (fencing); returns 1 (done) or 0 (stale) per op.
 */
export const SETTLE_SCRIPT = `${COMMON}
local results = {}
for o = 1, #ARGV, 6 do
  local op, level, eid, consumer, count, extra =
    ARGV[o], ARGV[o + 1], ARGV[o + 2], ARGV[o + 3], ARGV[o + 4], ARGV[o + 5]
  local s = stream(level)
  local p = redis.pcall('XPENDING', s, GROUP, eid, eid, 1)
  local ok = type(p) == 'table' and not p.err and #p == 1
    and p[1][2] == consumer and tostring(p[1][4]) == count
  if ok and op == 'x' then
    redis.call('XCLAIM', s, GROUP, consumer, 0, eid, 'IDLE', extra, 'JUSTID')
  elseif ok then
    local entry = redis.call('XRANGE', s, eid, eid)
    redis.call('XACK', s, GROUP, eid)
    redis.call('XDEL', s, eid)
    if entry[1] then
      local f = fieldsOf(entry[1][2])
      -- An entry another writer put there may lack fields; only a dead-letter reaches them.
      if op == 'd' and (f.i == nil or f.d == nil) then
        f.i = f.i or eid
        f.d = f.d or cjson.encode(entry[1][2])
      end
      f.a, f.c, f.k = f.a or '1', f.c or '0', f.k or ''
      local deliveries = tostring((tonumber(f.c) or 0) + tonumber(count))
      if op == 'a' or op == 'd' then
        local dk = B .. ':dedup:' .. f.k
        if f.k ~= '' and redis.call('GET', dk) == f.i then redis.call('DEL', dk) end
      end
      if op == 'n' then
        enqueue({ f.i, level, tostring(tonumber(f.a) + 1), deliveries, f.k, f.d }, tonumber(extra))
      elseif op == 'r' then
        enqueue({ f.i, level, f.a, deliveries, f.k, f.d }, 0)
      elseif op == 'd' then
        redis.call('XADD', B .. ':dead', '*', 'i', f.i, 'a', f.a, 'd', f.d, 'r', extra, 't', now)
      end
    end
  end
  results[#results + 1] = ok and 1 or 0
end
return results
`;

/** Returns { ready, inFlight, delayed, dead, paused }. */
export const STATS_SCRIPT = `${COMMON}
local total, pending = 0, 0
for _, level in ipairs(redis.call('ZRANGE', B .. ':levels', 0, -1)) do
  total = total + redis.call('XLEN', stream(level))
  local p = redis.pcall('XPENDING', stream(level), GROUP)
  if type(p) == 'table' and not p.err then pending = pending + p[1] end
end
return { total - pending, pending, redis.call('ZCARD', B .. ':delayed'),
  redis.call('XLEN', B .. ':dead'), redis.call('EXISTS', B .. ':paused') }
`;

/** Resumes a paused queue and wakes its blocked consumers. */
export const RESUME_SCRIPT = `${COMMON}
redis.call('DEL', B .. ':paused')
wake('resume')
return 1
`;

/** ARGV: deduplication keys. Returns those no live message of the queue carries. */
export const MISSING_SCRIPT = `
local missing = {}
for _, key in ipairs(ARGV) do
  if redis.call('EXISTS', KEYS[1] .. ':dedup:' .. key) == 0 then missing[#missing + 1] = key end
end
return missing
`;

/**
 * ARGV: the epoch this driver knows ('' for none yet), a fresh one. Returns { epoch, lost }:
 * the queue's epoch, written first if it had none, and 1 when the one known was gone or
 * replaced (the server lost the queue's keys).
 */
export const EPOCH_SCRIPT = `
local key = KEYS[1] .. ':epoch'
local current = redis.call('GET', key)
if not current then
  redis.call('SET', key, ARGV[2])
  current = ARGV[2]
end
local lost = 0
if ARGV[1] ~= '' and ARGV[1] ~= current then lost = 1 end
return { current, lost }
`;
