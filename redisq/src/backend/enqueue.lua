-- Pushes tasks onto a lane of their queue, writes their status records (when kept),
-- registers the queue and rings its signal list, which idle consumers block on.
-- KEYS[1] the lane, KEYS[2] signal list, KEYS[3] counters hash, KEYS[4] known queues set
-- ARGV[1] lane name, ARGV[2] record key prefix ('' for no records), ARGV[3] queue,
-- ARGV[4] task name, ARGV[5] created_at (Unix ms), ARGV[6] n, ARGV[7..] n (id, payload) pairs
local n = tonumber(ARGV[6])
local payloads = {}
for i = 1, n do
  payloads[i] = ARGV[6 + 2 * i]
end
for i = 1, n, 1000 do
  redis.call('RPUSH', KEYS[1], unpack(payloads, i, math.min(i + 999, n)))
end
local last = redis.call('HINCRBY', KEYS[3], 'pushed:' .. ARGV[1], n)
if ARGV[2] ~= '' then
  for i = 1, n do
    redis.call('HSET', ARGV[2] .. ARGV[5 + 2 * i], 'status', 'queued', 'queue', ARGV[3],
      'name', ARGV[4], 'created_at', ARGV[5], 'lane', ARGV[1], 'seq', last - n + i)
  end
end
if redis.call('LLEN', KEYS[2]) < 64 then
  redis.call('RPUSH', KEYS[2], 1)
end
redis.call('SADD', KEYS[4], ARGV[3])
return last
