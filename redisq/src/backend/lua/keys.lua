-- Ordering keys: each key's waiting tasks in a list of their own (q.key_prefix .. key,
-- gone when empty), the keys that have waiting tasks and no consumer in `ready` (each at
-- most once, taken round robin), the keys whose head task runs or waits for its retry in
-- `busy`, and the tasks waiting or running per key in `load`. A key is in `ready` exactly
-- when its list is not empty and it is not in `busy`, so a claim reads only keys it can
-- take: idle keys cost nothing.

-- The ordering key a payload carries: redisq writes it right after the id,
-- {"id":"<id>","key":"<key>", (wire.rs); nil for a task without one. A key with an escape
-- in it is decoded in full.
local function payload_key(payload)
  local key = string.match(payload, '^{"id":"[^"\\]+","key":"([^"]*)"')
  if key == nil or not string.find(key, '\\', 1, true) then
    return key
  end
  local ok, task = pcall(cjson.decode, payload)
  if ok and type(task) == 'table' and type(task.key) == 'string' then
    return task.key
  end
  return nil
end

-- Makes key ready unless a consumer holds it; at the front when first, else at the back.
local function key_ready(q, key, first)
  if redis.call('HEXISTS', q.busy, key) == 0 then
    redis.call(first and 'LPUSH' or 'RPUSH', q.ready, key)
  end
end

-- Appends a new task of key to its list, counting it in the key's load.
local function key_push(q, key, payload)
  if redis.call('RPUSH', q.key_prefix .. key, payload) == 1 then
    key_ready(q, key, false)
  end
  redis.call('ZINCRBY', q.load, 1, key)
  redis.call('HINCRBY', q.counters, KEYED_COUNTER, 1)
end

-- Puts a task back at the head of its key's list, the key first in line (a hand-back).
local function key_return(q, key, payload)
  redis.call('LPUSH', q.key_prefix .. key, payload)
  redis.call('HDEL', q.busy, key)
  redis.call('LPUSH', q.ready, key)
end

-- The key's head task finished for good (done or dead): the key goes to the back of the
-- line when it has more, and its load goes down. Only while consumer holds it.
local function key_finished(q, key, consumer)
  if redis.call('HGET', q.busy, key) ~= consumer then
    return
  end
  redis.call('HDEL', q.busy, key)
  if redis.call('EXISTS', q.key_prefix .. key) == 1 then
    redis.call('RPUSH', q.ready, key)
  end
  if tonumber(redis.call('ZINCRBY', q.load, -1, key)) <= 0 then
    redis.call('ZREM', q.load, key)
  end
  redis.call('HINCRBY', q.counters, KEYED_COUNTER, -1)
end

-- The key's head task failed and runs again due (Unix ms): back at the head of its list,
-- the key held until then, so nothing of the key overtakes it. Once: a key has one task
-- out at a time, so a key already held holds this one (an outcome recorded again).
local function key_hold(q, key, payload, due)
  if redis.call('HGET', q.busy, key) == HELD then
    return
  end
  redis.call('LPUSH', q.key_prefix .. key, payload)
  redis.call('HSET', q.busy, key, HELD)
  redis.call('ZADD', q.held, due, key)
end

-- Releases up to max keys whose retry is due, first in line. Returns how many.
local function key_release_due(q, max, now)
  local due = redis.call('ZRANGEBYSCORE', q.held, '-inf', now, 'LIMIT', 0, max)
  for i = #due, 1, -1 do
    redis.call('ZREM', q.held, due[i])
    if redis.call('HGET', q.busy, due[i]) == HELD then
      redis.call('HDEL', q.busy, due[i])
      if redis.call('EXISTS', q.key_prefix .. due[i]) == 1 then
        redis.call('LPUSH', q.ready, due[i])
      end
    end
  end
  return #due
end

-- Takes the head task of up to want ready keys, at most one per key, each key then held by
-- consumer (when claimed; a pop for at most once puts the key back in line). A suspect
-- (see takeable) comes alone and only when alone allows; else it and the keys after it
-- stay first in line. Returns the payloads and the suspect's count (0: none).
local function take_keyed(q, want, consumer, claimed, alone, suspects)
  local items, suspect = {}, 0
  local keys = want > 0 and redis.call('LPOP', q.ready, want)
  if not keys then
    return items, 0
  end
  local held, back = {}, #keys + 1
  for i = 1, #keys do
    local key = keys[i]
    local list = q.key_prefix .. key
    local item = redis.call('LINDEX', list, 0)
    if item and claimed and suspects then
      local count = redis.call('HGET', q.deliveries, delivery_key(item))
      if count and not (alone and #items == 0) then
        back = i
        break
      end
      suspect = tonumber(count or '0')
    end
    if item then
      redis.call('LPOP', list)
      items[#items + 1] = item
      if claimed then
        held[#held + 1] = key
        held[#held + 1] = consumer
      elseif redis.call('EXISTS', list) == 1 then
        redis.call('RPUSH', q.ready, key)
      end
    end
    if suspect > 0 then
      back = i + 1
      break
    end
  end
  for i = #keys, back, -1 do
    redis.call('LPUSH', q.ready, keys[i])
  end
  if #held > 0 then
    redis.call('HSET', q.busy, unpack(held))
  end
  return items, suspect
end

-- Whether consumer may take from the ordered queue: it owns it, or the owner is gone
-- (no fence: its tasks are back at the head), and then it becomes the owner.
local function own_queue(q, consumer, now)
  local owner = redis.call('HGET', q.owner, OWNER.consumer)
  if owner == consumer then
    return true
  end
  if owner and redis.call('HEXISTS', q.fences, owner) == 1 then
    return false
  end
  redis.call('HSET', q.owner, OWNER.consumer, consumer, OWNER.since, now)
  return true
end
