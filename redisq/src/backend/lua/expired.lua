-- The consumers of one queue whose lease has run out, by the server's clock.
-- KEYS: the queue's keys (queue_keys()). ARGV[1] how many at most
local q = queue()
return redis.call('ZRANGEBYSCORE', q.leases, '-inf', now_ms(), 'LIMIT', 0, tonumber(ARGV[1]))
