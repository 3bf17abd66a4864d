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

-- Moves every task of a consumer's claimed list back to the head of the normal lane, in
-- order, drops the consumer's lease, marks the tasks' records queued again (their place is
-- ahead of every counted task: seq 0) and rings the signal; returns how many moved.
local function hand_back(claimed, pending, leases, consumer, signal, counters, prefix)
  local moved = 0
  local item = redis.call('LMOVE', claimed, pending, 'RIGHT', 'LEFT')
  while item do
    moved = moved + 1
    set_record(prefix, payload_id(item), 'status', 'queued', 'lane', 'normal', 'seq', 0)
    item = redis.call('LMOVE', claimed, pending, 'RIGHT', 'LEFT')
  end
  redis.call('ZREM', leases, consumer)
  if moved > 0 then
    redis.call('HINCRBY', counters, 'taken:normal', -moved)
    redis.call('RPUSH', signal, 1)
  end
  return moved
end
