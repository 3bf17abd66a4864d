-- Renews the leases of several consumers of one queue.
-- KEYS[1] leases zset; ARGV[1] lease (ms); ARGV[2..] consumer ids
local deadline = now_ms() + tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], deadline, ARGV[i])
end
return #ARGV - 1
