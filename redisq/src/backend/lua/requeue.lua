-- Moves one dead-letter record's payload back to the tail of the normal lane (a task with
-- an ordering key: of its key's list), once, and marks the task's record queued there
-- again (kept until it finishes anew).
-- KEYS: the queue's keys (queue_keys()), then the task's record.
-- ARGV[1] the dead-letter record, [2] the payload to push
local q = queue()
if redis.call('ZREM', q.dead, ARGV[1]) == 0 then
  return 0
end
redis.call('HINCRBY', q.counters, DEAD_BYTES, -#ARGV[1])
local key = payload_key(ARGV[2])
local record = KEYS[QUEUE_KEYS + 1]
if key then
  keyed_count(q, 1, key_push(q, key, ARGV, 2, 2))
  if set_record(record, F.status, S.queued) then
    redis.call('PERSIST', record)
  end
  ring(q.signal)
  return 1
end
redis.call('RPUSH', q.lane_normal, ARGV[2])
local seq = redis.call('HINCRBY', q.counters, PUSHED[NORMAL], 1)
if set_record(record, F.status, S.queued, F.lane, LANE_NAMES[NORMAL], F.seq, seq) then
  redis.call('PERSIST', record)
end
ring(q.signal)
return 1
