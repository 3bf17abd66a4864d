-- Settles a consumer's finished work and takes more, atomically.
-- KEYS[1] normal lane, KEYS[2] the consumer's claimed list, KEYS[3] leases zset,
-- KEYS[4] scheduled zset, KEYS[5] dead zset, KEYS[6] high lane, KEYS[7] low lane,
-- KEYS[8] signal list, KEYS[9] stats hash, KEYS[10] throughput key prefix,
-- KEYS[11] latency samples list, KEYS[12] counters hash
-- ARGV[1] consumer id, ARGV[2] lease (ms), ARGV[3] tasks done at the head of the claimed
-- list, ARGV[4] how many to take at most, ARGV[5] mode, ARGV[6] dead-letter count bound,
-- ARGV[7] dead-letter age bound (ms), ARGV[8] record key prefix, ARGV[9] TTL of a done
-- record (s), ARGV[10] TTL of a dead record (s), ARGV[11..14] processed, failed, retried,
-- dead counts, ARGV[15] latency samples ("wait:run,…" in ms), ARGV[16] number of effects,
-- ARGV[17] "1" to mark the records of claimed tasks processing (skipped for queues whose
-- tasks keep none), ARGV[18..] effects, each a kind and its arguments:
--   retry (due, payload, id, attempts, error): the payload waits in the scheduled set
--   dead  (score, record, id, attempts, error): a dead letter, scored in microseconds
--   done  (id, attempts, result): a success
-- Modes: "claim" acknowledges, applies effects, promotes due tasks, renews the lease and
-- moves up to max tasks, high lane first, to the claimed list; "pop" (at most once)
-- applies effects, promotes and pops up to max tasks; "release" acknowledges, applies
-- effects and returns every other claimed task to the head of the normal lane, in order,
-- dropping the lease. Taking nothing clears the signal list, so that a consumer blocked
-- on it wakes only for tasks pushed after.
local now = now_ms()
local mode = ARGV[5]
local prefix = ARGV[8]
local done = tonumber(ARGV[3])
if done > 0 and mode ~= 'pop' then
  redis.call('LTRIM', KEYS[2], done, -1)
end

-- Wakes a caller of wait() on a finished task.
local function finished(key, id, ttl)
  if key then
    if redis.call('HEXISTS', key, 'waiting') == 1 then
      redis.call('RPUSH', prefix .. id .. ':done', 1)
      redis.call('EXPIRE', prefix .. id .. ':done', 60)
    end
    redis.call('EXPIRE', key, ttl)
  end
end

-- Effects.
local any_dead = false
local i = 18
for _ = 1, tonumber(ARGV[16]) do
  local kind = ARGV[i]
  if kind == 'retry' then
    redis.call('ZADD', KEYS[4], ARGV[i + 1], ARGV[i + 2])
    set_record(prefix, ARGV[i + 3], 'status', 'failed', 'attempts', ARGV[i + 4],
      'error', ARGV[i + 5], 'finished_at', now)
    i = i + 6
  elseif kind == 'dead' then
    redis.call('ZADD', KEYS[5], ARGV[i + 1], ARGV[i + 2])
    any_dead = true
    local key = set_record(prefix, ARGV[i + 3], 'status', 'dead', 'attempts', ARGV[i + 4],
      'error', ARGV[i + 5], 'finished_at', now)
    finished(key, ARGV[i + 3], ARGV[10])
    i = i + 6
  elseif kind == 'done' then
    local key = set_record(prefix, ARGV[i + 1], 'status', 'done', 'attempts', ARGV[i + 2],
      'result', ARGV[i + 3], 'finished_at', now)
    finished(key, ARGV[i + 1], ARGV[9])
    i = i + 4
  else
    return redis.error_reply('unknown effect ' .. tostring(kind))
  end
end
if any_dead then
  local dead_age = tonumber(ARGV[7])
  if dead_age > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', '(' .. ((now - dead_age) * 1000))
  end
  redis.call('ZREMRANGEBYRANK', KEYS[5], 0, -(tonumber(ARGV[6]) + 1))
end

-- Statistics.
local processed = tonumber(ARGV[11])
if processed > 0 then
  redis.call('HINCRBY', KEYS[9], 'processed', processed)
  redis.call('HSET', KEYS[9], 'last_processed', now)
  local minute = KEYS[10] .. ':' .. math.floor(now / 60000)
  redis.call('INCRBY', minute, processed)
  redis.call('EXPIRE', minute, 180)
end
if tonumber(ARGV[12]) > 0 then
  redis.call('HINCRBY', KEYS[9], 'failed', ARGV[12])
end
if tonumber(ARGV[13]) > 0 then
  redis.call('HINCRBY', KEYS[9], 'retried', ARGV[13])
end
if tonumber(ARGV[14]) > 0 then
  redis.call('HINCRBY', KEYS[9], 'dead', ARGV[14])
end
if ARGV[15] ~= '' then
  for sample in string.gmatch(ARGV[15], '[^,]+') do
    redis.call('LPUSH', KEYS[11], sample)
  end
  redis.call('LTRIM', KEYS[11], 0, 999)
end

if mode == 'release' then
  return hand_back(KEYS[2], KEYS[1], KEYS[3], ARGV[1], KEYS[8], KEYS[12], prefix)
end
local max = tonumber(ARGV[4])
promote(KEYS[4], KEYS[1], KEYS[12], prefix, math.max(max, 100), now)
if mode == 'claim' then
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), ARGV[1])
end
if max <= 0 then
  return {}
end
local items = {}
local lanes = { { KEYS[6], 'taken:high' }, { KEYS[1], 'taken:normal' }, { KEYS[7], 'taken:low' } }
for _, lane in ipairs(lanes) do
  local want = max - #items
  if want <= 0 then
    break
  end
  local got = redis.call('LPOP', lane[1], want)
  if got then
    redis.call('HINCRBY', KEYS[12], lane[2], #got)
    for j = 1, #got do
      items[#items + 1] = got[j]
    end
  end
end
if #items == 0 then
  redis.call('DEL', KEYS[8])
  return items
end
if mode == 'claim' then
  redis.call('RPUSH', KEYS[2], unpack(items))
end
-- Producers add a wake-up token per push; a few are enough to wake idle consumers.
redis.call('LTRIM', KEYS[8], -64, -1)
if prefix ~= '' and ARGV[17] == '1' then
  for j = 1, #items do
    set_record(prefix, payload_id(items[j]), 'status', 'processing', 'started_at', now,
      'worker', ARGV[1])
  end
end
return items
