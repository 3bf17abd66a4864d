-- Pushes tasks onto a lane of their queue, writes their status records, registers the
-- queue and rings its signal list, which idle consumers block on.
-- KEYS[1] the lane, [2] signal list, [3] counters, [4] known queues, [4 + i] the record of
-- task i. ARGV[1] lane name, [2] queue, [3] task name, [4] created_at (Unix ms),
-- [4 + i] the payload of task i.
local n = #ARGV - 4
push_range(KEYS[1], ARGV, 5, 4 + n)
local last = redis.call('HINCRBY', KEYS[3], PUSHED[ARGV[1]], n)
for i = 1, n do
  redis.call('HSET', KEYS[4 + i], F.status, S.queued, F.queue, ARGV[2], F.name, ARGV[3],
    F.created_at, ARGV[4], F.lane, ARGV[1], F.seq, last - n + i)
end
if redis.call('LLEN', KEYS[2]) < SIGNAL_MAX then
  redis.call('RPUSH', KEYS[2], 1)
end
redis.call('SADD', KEYS[4], ARGV[2])
return last
