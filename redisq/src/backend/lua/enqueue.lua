-- Pushes tasks onto a lane of their queue, writes their status records and rings its
-- signal list, which idle consumers block on. (Its own short key layout: it is the hot
-- path of tasks that keep records.)
-- KEYS[1] the lane, [2] signal list, [3] counters, [3 + i] the record of task i.
-- ARGV[1] lane index, [2] queue, [3] task name, [4] created_at (Unix ms), [4 + i] the
-- payload of task i.
local n = #ARGV - 4
local lane = tonumber(ARGV[1])
push_range(KEYS[1], ARGV, 5, 4 + n)
local last = redis.call('HINCRBY', KEYS[3], PUSHED[lane], n)
for i = 1, n do
  redis.call('HSET', KEYS[3 + i], F.status, S.queued, F.queue, ARGV[2], F.name, ARGV[3],
    F.created_at, ARGV[4], F.lane, LANE_NAMES[lane], F.seq, last - n + i)
end
ring(KEYS[2])
return last
