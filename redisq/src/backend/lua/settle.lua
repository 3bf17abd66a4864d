-- Settles a consumer's finished work and takes more, atomically: the claim protocol.
-- The layout below is built by backend/settle.rs (`SettleCall`), and only there.
-- KEYS: the queue's keys (queue_keys()), then two per outcome: its record, its done list.
-- ARGV[1] consumer id, [2] lease (ms), [3] mode, [4] the consumer's fencing token (0:
-- none yet), [5] this call's number (increasing per consumer), [6] tasks done at the
-- head of the claimed list, [7] how many to take at most, [8] flags: "t" to track task
-- states, "o" for an ordered queue, "k<n>" to take up to n tasks of one key (else 1),
-- "s<n>" to take a task alone once it was held n times when a lease ran out (else 1),
-- [9] dead-letter count bound, [10] age bound (ms), [11] byte bound, [12] TTL of a done
-- record (s), [13] of a dead one (s), [14..17] processed, failed, retried, dead counts,
-- [18] latency samples, [19] n ids whose state to forget, then the ids, then the number
-- of outcomes and the outcomes (see apply_outcomes).
-- Modes: "claim" acknowledges, records, promotes due tasks, renews the lease (a new
-- token when the consumer has none) and claims up to max tasks; "fill" is a claim that
-- adds to a batch, so it takes no suspect; "pop" (at most once)
-- records, promotes and pops; "record" only records (the leading part of a settle too
-- large for one call); "release" acknowledges, records and hands every other claimed task
-- back, dropping the lease; "evict" hands everything back unfenced (the consumer's own
-- worker, at a shutdown deadline).
-- An ordered queue is taken from only by its owner (own_queue); a retry there puts the
-- task back at the head, the rest of the claimed list before it, and holds the queue
-- until the retry is due (the hold key).
-- Replies { status, token, n, items }: status "ok", or "stale" when the token is not the
-- consumer's fence (its lease ran out and its tasks went back: nothing was done), "busy"
-- when another consumer owns the ordered queue, "held" while its retry hold lasts (n: the
-- ms left); n is the suspect's count for a claim (0: none), the tasks moved for a release.
local q = queue()
local now = now_ms()
local consumer, mode = ARGV[1], ARGV[3]
local token, seq, done = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local max = tonumber(ARGV[7])
local track, ordered = string.find(ARGV[8], 't', 1, true), string.find(ARGV[8], 'o', 1, true)
local per_key = tonumber(string.match(ARGV[8], 'k(%d+)') or '1')
q.suspect_at = tonumber(string.match(ARGV[8], 's(%d+)') or '1')
local forget = tonumber(ARGV[19])
local at = 20 + forget
local claim = mode == 'claim' or mode == 'fill'

if mode == 'evict' then
  local moved = hand_back(q, 0, false)
  drop_lease(q, consumer)
  return { 'ok', '0', tostring(moved), {} }
end
local segmented = false
if claim or mode == 'release' or (mode == 'record' and token > 0) then
  local held, _, lanes = fence_parse(redis.call('HGET', q.fences, consumer))
  local reports = done > 0 or forget > 0 or tonumber(ARGV[at]) > 0
  if (token > 0 and held ~= token) or (token == 0 and (held or reports)) then
    return { 'stale', '0', '0', {} }
  end
  segmented = lanes
end
local status = 'ok'
if ordered and claim and not own_queue(q, consumer, now) then
  -- Without a token the consumer holds nothing here (else it would be stale).
  if token == 0 then
    return { 'busy', '0', '0', {} }
  end
  status, max = 'busy', 0
end
local suspects = (claim or mode == 'release') and redis.call('HLEN', q.deliveries) > 0

-- Outcomes first: a retried task's key is held before its acknowledgement lets keys go.
q.heads, q.retried, q.retried_ids = {}, {}, {}
local any_dead = apply_outcomes(q, tonumber(ARGV[at]), at + 1, QUEUE_KEYS, now, consumer,
  ARGV[12], ARGV[13], ordered and mode ~= 'record')
if type(any_dead) == 'table' then
  return any_dead
end
if claim or mode == 'release' then
  segmented = acknowledge(q, done, suspects, segmented)
end
for i = 20, 19 + forget, CHUNK do
  redis.call('HDEL', q.state, unpack(ARGV, i, math.min(i + CHUNK - 1, 19 + forget)))
end
if any_dead then
  trim_dead(q, tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11]), now)
end
tally(q, tonumber(ARGV[14]), tonumber(ARGV[15]), tonumber(ARGV[16]), tonumber(ARGV[17]),
  ARGV[18], now)

if mode == 'record' then
  if token > 0 then
    redis.call('HSET', q.fences, consumer, fence_value(token, seq, segmented))
  end
  return { 'ok', tostring(token), '0', {} }
end
if #q.heads > 0 then
  -- An ordered queue's retry: what it took after the task goes back, then the task.
  hand_back(q, 0, false)
  segmented = false
  for i = #q.heads, 1, -1 do
    redis.call('LPUSH', q.lane_normal, q.heads[i])
  end
  redis.call('SET', q.hold, now + q.hold_ms, 'PX', math.max(q.hold_ms, 1))
end
if mode == 'release' then
  local moved = hand_back(q, 0, false)
  drop_lease(q, consumer)
  return { 'ok', '0', tostring(moved), {} }
end
local n = 0
if ordered and claim and status == 'ok' then
  n = redis.call('PTTL', q.hold)
  if n > 0 then
    status, max = 'held', 0
  else
    n = 0
  end
end
promote(q, math.max(max, 100), now, track)
local items, suspect = {}, 0
if max > 0 then
  items, suspect, segmented = take(q, max, per_key, now, consumer, track, claim,
    mode == 'claim', suspects, segmented)
end
if claim then
  if token == 0 then
    token = redis.call('HINCRBY', q.counters, FENCE_COUNTER, 1)
  end
  redis.call('HSET', q.fences, consumer, fence_value(token, seq, segmented))
  redis.call('ZADD', q.leases, now + tonumber(ARGV[2]), consumer)
end
if status == 'held' then
  suspect = n
end
return { status, tostring(token), tostring(suspect), items }
