-- Renews the leases of consumers of one queue whose token is still their fence; returns
-- the consumers whose lease is gone (recovered: they will find out when they settle).
-- KEYS: the queue's keys (queue_keys()). ARGV[1] lease (ms), then (consumer, token) pairs
local q = queue()
local deadline = now_ms() + tonumber(ARGV[1])
local lost = {}
for i = 2, #ARGV, 2 do
  local consumer, token = ARGV[i], tonumber(ARGV[i + 1])
  if fence_parse(redis.call('HGET', q.fences, consumer)) == token then
    redis.call('ZADD', q.leases, 'XX', deadline, consumer)
  else
    lost[#lost + 1] = consumer
  end
end
return lost
