-- When a consumer's lease has run out, returns its claimed tasks to the head of the
-- pending list, in order, and drops the lease; -1 when the lease is still current.
-- KEYS[1] pending list, KEYS[2] the consumer's claimed list, KEYS[3] leases zset,
-- KEYS[4] signal list (rung when tasks moved, to wake blocked consumers)
-- ARGV[1] consumer id
local deadline = redis.call('ZSCORE', KEYS[3], ARGV[1])
if deadline and tonumber(deadline) > now_ms() then
  return -1
end
local moved = 0
while redis.call('LMOVE', KEYS[2], KEYS[1], 'RIGHT', 'LEFT') do
  moved = moved + 1
end
redis.call('ZREM', KEYS[3], ARGV[1])
if moved > 0 then
  redis.call('RPUSH', KEYS[4], 1)
end
return moved
