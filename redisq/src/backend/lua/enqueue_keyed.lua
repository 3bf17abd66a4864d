-- Pushes tasks with ordering keys onto their keys' lists (key_push), writes their status
-- records when given their keys, and rings the signal list.
-- KEYS: the queue's keys (queue_keys()), then the record of each
-- task (none without records). ARGV[1] queue, [2] task name, [3] created_at (Unix ms),
-- [4] "1" for records, then each task's key and payload.
local q = queue()
local records = ARGV[4] == '1'
local n = (#ARGV - 4) / 2
local payloads = {}
for i = 1, n do
  payloads[i] = ARGV[4 + 2 * i]
  if records then
    redis.call('HSET', KEYS[QUEUE_KEYS + i], F.status, S.queued, F.queue, ARGV[1],
      F.name, ARGV[2], F.created_at, ARGV[3], F.key, ARGV[3 + 2 * i])
  end
end
-- Consecutive tasks of one key in one push.
local from, keys = 1, 0
for i = 1, n do
  local key = ARGV[3 + 2 * i]
  if i == n or ARGV[5 + 2 * i] ~= key then
    keys = keys + key_push(q, key, payloads, from, i)
    from = i + 1
  end
end
keyed_count(q, n, keys)
ring(q.signal)
return n
