-- Adds tasks to a queue's scheduled set, due delay ms from now by the server's clock,
-- with `scheduled` status records when given their keys.
-- KEYS: the queue's keys (queue_keys()), then the record of each
-- task (none without records). ARGV[1] delay (ms), [2] queue, [3] task name, [4] "1" for
-- records, [5..] the payloads
local q = queue()
local now = now_ms()
local due = now + tonumber(ARGV[1])
local records = ARGV[4] == '1'
for i = 5, #ARGV, CHUNK do
  local args = {}
  for j = i, math.min(i + CHUNK - 1, #ARGV) do
    args[#args + 1] = due
    args[#args + 1] = ARGV[j]
  end
  redis.call('ZADD', q.scheduled, unpack(args))
end
if records then
  for i = 5, #ARGV do
    redis.call('HSET', KEYS[QUEUE_KEYS + 1 + i - 5], F.status, S.scheduled, F.queue, ARGV[2],
      F.name, ARGV[3], F.created_at, now, F.lane, LANE_NAMES[NORMAL])
  end
end
return #ARGV - 4
