-- Settles a consumer's finished work and takes more, atomically.
-- KEYS[1] pending list (normal lane), KEYS[2] the consumer's claimed list, KEYS[3] leases
-- zset, KEYS[4] scheduled zset, KEYS[5] dead zset, KEYS[6] high lane, KEYS[7] low lane,
-- KEYS[8] signal list
-- ARGV[1] consumer id, ARGV[2] lease (ms), ARGV[3] tasks done at the head of the claimed
-- list, ARGV[4] how many to take at most, ARGV[5] mode, ARGV[6] dead-letter count bound,
-- ARGV[7] dead-letter age bound (ms), ARGV[8] number of effect triples, ARGV[9..] effects.
-- Modes: "claim" acknowledges, applies effects, promotes due tasks, renews the lease and
-- moves up to max tasks, high lane first, to the claimed list; "pop" (at most once)
-- applies effects, promotes and pops up to max tasks; "release" acknowledges, applies
-- effects and returns every other claimed task to the head of the normal lane, in order,
-- dropping the lease. Taking nothing clears the signal list, so that a consumer blocked
-- on it wakes only for tasks pushed after.
local now = now_ms()
local mode = ARGV[5]
local done = tonumber(ARGV[3])
if done > 0 and mode ~= 'pop' then
  redis.call('LTRIM', KEYS[2], done, -1)
end
apply_effects(KEYS[4], KEYS[5], 9, tonumber(ARGV[8]), tonumber(ARGV[6]), tonumber(ARGV[7]), now)
if mode == 'release' then
  local moved = 0
  while redis.call('LMOVE', KEYS[2], KEYS[1], 'RIGHT', 'LEFT') do
    moved = moved + 1
  end
  redis.call('ZREM', KEYS[3], ARGV[1])
  if moved > 0 then
    redis.call('RPUSH', KEYS[8], 1)
  end
  return moved
end
local max = tonumber(ARGV[4])
promote(KEYS[4], KEYS[1], math.max(max, 100), now)
if mode == 'claim' then
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), ARGV[1])
end
if max <= 0 then
  return {}
end
local items = {}
for _, lane in ipairs({KEYS[6], KEYS[1], KEYS[7]}) do
  local want = max - #items
  if want <= 0 then
    break
  end
  local got = redis.call('LPOP', lane, want)
  if got then
    for i = 1, #got do
      items[#items + 1] = got[i]
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
return items
