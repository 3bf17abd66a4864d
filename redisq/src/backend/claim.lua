-- Acknowledge, renew the lease, and claim more tasks for one consumer, atomically.
-- KEYS[1] pending list, KEYS[2] the consumer's claimed list, KEYS[3] leases zset
-- ARGV[1] consumer id, ARGV[2] lease (ms), ARGV[3] tasks done at the head of the claimed list,
-- ARGV[4] how many to claim at most
local done = tonumber(ARGV[3])
if done > 0 then
  redis.call('LTRIM', KEYS[2], done, -1)
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), ARGV[1])
local max = tonumber(ARGV[4])
if max <= 0 then
  return {}
end
local items = redis.call('LPOP', KEYS[1], max)
if not items then
  return {}
end
redis.call('RPUSH', KEYS[2], unpack(items))
return items
