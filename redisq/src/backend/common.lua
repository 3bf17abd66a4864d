-- Shared by the scripts of a queue; prepended to each of them.

-- Now in Unix milliseconds, by the Redis server's clock.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The id of a payload redisq encoded (it starts with {"id":"…"}); nil for others.
local function payload_id(payload)
  return string.match(payload, '^{"id":"([^"]+)"')
end

-- Sets fields of a task's status record, if the task has one (store_result).
local function set_record(prefix, id, ...)
  if prefix == '' or not id or id == '' then
    return nil
  end
  local key = prefix .. id
  if redis.call('EXISTS', key) == 0 then
    return nil
  end
  redis.call('HSET', key, ...)
  return key
end

-- Moves up to max due tasks from the scheduled set to the tail of the normal lane, and
-- marks their records queued with their place in the lane.
local function promote(scheduled, pending, counters, prefix, max, now)
  local due = redis.call('ZRANGEBYSCORE', scheduled, '-inf', now, 'LIMIT', 0, max)
  if #due > 0 then
    redis.call('ZREM', scheduled, unpack(due))
    redis.call('RPUSH', pending, unpack(due))
    local last = redis.call('HINCRBY', counters, 'pushed:normal', #due)
    for i = 1, #due do
      set_record(prefix, payload_id(due[i]), 'status', 'queued', 'lane', 'normal',
        'seq', last - #due + i)
    end
  end
  return #due
end

-- Marks the records of tasks moved back to the head of the normal lane as queued again
-- (their place there is ahead of every counted task: seq 0).
local function requeued(counters, prefix, items)
  for i = 1, #items do
    set_record(prefix, payload_id(items[i]), 'status', 'queued', 'lane', 'normal', 'seq', 0)
  end
end
