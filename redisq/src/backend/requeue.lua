-- Moves one dead-letter record's payload back to the tail of the pending list, once.
-- KEYS[1] dead zset, KEYS[2] pending list; ARGV[1] the record, ARGV[2] the payload to push
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('RPUSH', KEYS[2], ARGV[2])
  return 1
end
return 0
