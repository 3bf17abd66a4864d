-- Marks a task's status record as waited on, if it exists, so that the worker that
-- finishes it rings `<record>:done`. Returns 1 when marked, 0 when there is no record.
-- KEYS[1] the record
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'waiting', 1)
return 1
