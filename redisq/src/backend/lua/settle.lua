-- Settles a consumer's finished work and takes more, atomically: the claim protocol.
-- The layout below is built by backend/settle.rs (`SettleCall`), and only there.
-- KEYS: the queue's keys (queue_keys()), then two per outcome: its record, its done list.
-- ARGV[1] consumer id, [2] lease (ms), [3] mode, [4] the consumer's fencing token (0:
-- none yet), [5] this call's number (increasing per consumer), [6] tasks done at the
-- head of the claimed list, [7] how many to take at most, [8] "1" to track task states,
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
-- Replies { status, token, n, items }: status "ok", or "stale" when the token is not the
-- consumer's fence (its lease ran out and its tasks went back: nothing was done); n is the
-- suspect's count for a claim (0: none), the tasks moved for a release.
local q = queue()
local now = now_ms()
local consumer, mode = ARGV[1], ARGV[3]
local token, seq, done = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local max, track = tonumber(ARGV[7]), ARGV[8] == '1'
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
local suspects = (claim or mode == 'release') and redis.call('HLEN', q.deliveries) > 0

if claim or mode == 'release' then
  segmented = acknowledge(q, done, suspects, segmented)
end
for i = 20, 19 + forget, CHUNK do
  redis.call('HDEL', q.state, unpack(ARGV, i, math.min(i + CHUNK - 1, 19 + forget)))
end
local any_dead = apply_outcomes(q, tonumber(ARGV[at]), at + 1, QUEUE_KEYS, now, consumer,
  ARGV[12], ARGV[13])
if type(any_dead) == 'table' then
  return any_dead
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
if mode == 'release' then
  local moved = hand_back(q, 0, false)
  drop_lease(q, consumer)
  return { 'ok', '0', tostring(moved), {} }
end
promote(q, math.max(max, 100), now, track)
local items, suspect = {}, 0
if max > 0 then
  items, suspect, segmented = take(q, max, now, consumer, track, claim, mode == 'claim',
    suspects, segmented)
end
if claim then
  if token == 0 then
    token = redis.call('HINCRBY', q.counters, FENCE_COUNTER, 1)
  end
  redis.call('HSET', q.fences, consumer, fence_value(token, seq, segmented))
  redis.call('ZADD', q.leases, now + tonumber(ARGV[2]), consumer)
end
return { 'ok', tostring(token), tostring(suspect), items }
