-- The consumers of one queue whose lease has run out, by the server's clock.
-- KEYS[1] leases zset; ARGV[1] how many at most
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms(), 'LIMIT', 0, tonumber(ARGV[1]))
