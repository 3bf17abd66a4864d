-- Moves one dead-letter record's payload back to the tail of the normal lane, once, and
-- marks the task's record queued there again (kept until it finishes anew).
-- KEYS[1] dead, [2] normal lane, [3] counters, [4] signal, [5] the task's record.
-- ARGV[1] the dead-letter record, [2] the payload to push
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('RPUSH', KEYS[2], ARGV[2])
local seq = redis.call('HINCRBY', KEYS[3], PUSHED[NORMAL], 1)
if set_record(KEYS[5], F.status, S.queued, F.lane, NORMAL, F.seq, seq) then
  redis.call('PERSIST', KEYS[5])
end
if redis.call('LLEN', KEYS[4]) < SIGNAL_MAX then
  redis.call('RPUSH', KEYS[4], 1)
end
return 1
