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

-- Appends new tasks of key (payloads[from..to]) to its list, counting them in the key's
-- load (the caller adds them to counters.keyed).
local function key_push(q, key, payloads, from, to)
  local list, n = q.key_prefix .. key, to - from + 1
  local length = 0
  for i = from, to, CHUNK do
    length = redis.call('RPUSH', list, unpack(payloads, i, math.min(i + CHUNK - 1, to)))
  end
  if length == n then
    key_ready(q, key, false)
  end
  redis.call('ZINCRBY', q.load, n, key)
end

-- Adds n to the keyed tasks waiting or running (negative: taken out).
local function keyed_count(q, n)
  if n ~= 0 then
    redis.call('HINCRBY', q.counters, KEYED_COUNTER, n)
  end
end

-- n acknowledged tasks of key are gone from its load (a retried one was counted again by
-- key_hold first, so its load never drops to 0 on the way); the caller takes them out of
-- counters.keyed.
local function key_unload(q, key, n)
  if tonumber(redis.call('ZINCRBY', q.load, -n, key)) <= 0 then
    redis.call('ZREM', q.load, key)
  end
end

-- The consumer holding key has no task of it left: the key goes to the back of the line
-- when it has more. Only while consumer holds it (not while a retry holds it).
local function key_release(q, key, consumer)
  if redis.call('HGET', q.busy, key) ~= consumer then
    return
  end
  redis.call('HDEL', q.busy, key)
  if redis.call('EXISTS', q.key_prefix .. key) == 1 then
    redis.call('RPUSH', q.ready, key)
  end
end

-- The failed tasks of one key (payloads, in their order) run again due (Unix ms): back at
-- the head of its list, the key held until then, so nothing of the key overtakes them.
-- They count in the key's load again (their acknowledgement takes them out once).
local function key_hold(q, key, payloads, due)
  local list = q.key_prefix .. key
  for i = #payloads, 1, -1 do
    redis.call('LPUSH', list, payloads[i])
  end
  redis.call('HSET', q.busy, key, HELD)
  redis.call('ZADD', q.held, due, key)
  redis.call('ZINCRBY', q.load, #payloads, key)
  keyed_count(q, #payloads)
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

-- How many of the first n tasks of a key's list to take: up to the first suspect (see
-- takeable), which comes alone and only when alone allows. Returns the count and the
-- suspect's count when it is taken.
local function key_takeable(q, list, n, alone, suspects)
  if not suspects then
    return n, 0
  end
  local head = redis.call('LRANGE', list, 0, n - 1)
  for i = 1, #head do
    local count = tonumber(redis.call('HGET', q.deliveries, delivery_key(head[i])) or '0')
    if count >= q.suspect_at then
      if i == 1 and alone then
        return 1, count
      end
      return i - 1, 0
    end
  end
  return #head, 0
end

-- Takes tasks of up to want ready keys, from the head of each key's list: up to per_key of
-- one key (its tasks then run one after the other, in order, on this consumer), each key
-- then held by consumer (when claimed; a pop for at most once puts the key back in line).
-- A suspect (see takeable) comes alone and only when alone allows; else it and the keys
-- after it stay first in line. Returns the payloads and the suspect's count (0: none).
local function take_keyed(q, want, per_key, consumer, claimed, alone, suspects)
  local items, suspect = {}, 0
  local keys = want > 0 and redis.call('LPOP', q.ready, want)
  if not keys then
    return items, 0
  end
  local held, back = {}, #keys + 1
  for i = 1, #keys do
    local key = keys[i]
    local list = q.key_prefix .. key
    local n, count = math.min(per_key, want - #items), 0
    if n > 0 and claimed then
      n, count = key_takeable(q, list, n, alone and #items == 0, suspects)
    end
    if n <= 0 then
      back = i
      break
    end
    local got = redis.call('LPOP', list, n) or {}
    for j = 1, #got do
      items[#items + 1] = got[j]
    end
    if claimed and #got > 0 then
      held[#held + 1] = key
      held[#held + 1] = consumer
    elseif redis.call('EXISTS', list) == 1 then
      redis.call('RPUSH', q.ready, key)
    end
    suspect = count
    if suspect > 0 or #items >= want then
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
