-- Renew the leases of several consumers of one queue.
-- KEYS[1] leases zset; ARGV[1] lease (ms); ARGV[2..] consumer ids
local t = redis.call('TIME')
local deadline = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], deadline, ARGV[i])
end
return #ARGV - 1
