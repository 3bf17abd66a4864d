-- Ordering keys: each key's tasks in a list of their own (q.key_prefix .. key, gone when
-- empty), oldest first. A claim copies the head of a key's list into the consumer's
-- claimed list and leaves it there; the acknowledgement removes it. So a key's list holds
-- its tasks out with a consumer (at its head) and those waiting behind them, and:
--   a key is in `ready` (once) exactly when its list is not empty, no consumer holds its
--   head and no retry holds it (`held`);
--   a push that makes a key's list non-empty finds the key idle, and makes it ready.
-- A claim reads only ready keys, so idle keys cost nothing; keys are taken round robin.

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

-- Adds n to the keyed tasks waiting or running and k to the keys that have any.
local function keyed_count(q, n, k)
  if n ~= 0 then
    redis.call('HINCRBY', q.counters, KEYED_COUNTER, n)
  end
  if k ~= 0 then
    redis.call('HINCRBY', q.counters, KEYS_COUNTER, k)
  end
end

-- Appends new tasks of key (payloads[from..to]) to its list; a list that was empty means
-- an idle key, which becomes ready. Returns 1 when it was (a key with tasks again).
local function key_push(q, key, payloads, from, to)
  local length = 0
  for i = from, to, CHUNK do
    length = redis.call('RPUSH', q.key_prefix .. key,
      unpack(payloads, i, math.min(i + CHUNK - 1, to)))
  end
  if length == to - from + 1 then
    redis.call('RPUSH', q.ready, key)
    return 1
  end
  return 0
end

-- The n tasks at the head of key's list (the ones a consumer held) are finished; unless
-- kept (the consumer still holds more of the key), a key with tasks left goes to the back
-- of the line (q.next_up, which the caller pushes onto `ready`). Returns the change in
-- keys with tasks (0 or -1).
local function key_done(q, key, n, kept)
  local list = q.key_prefix .. key
  redis.call('LPOP', list, n)
  if redis.call('EXISTS', list) == 0 then
    return -1
  end
  if not kept then
    q.next_up[#q.next_up + 1] = key
  end
  return 0
end

-- Of the n tasks at the head of key's list that a consumer held, the first done finished,
-- the held.payloads after them failed and run again (rewritten in place), and the rest it
-- did not start (they stay): the key is held until held.due.
local function key_hold(q, key, done, held)
  local list = q.key_prefix .. key
  if done > 0 then
    redis.call('LPOP', list, done)
  end
  for i = 1, #held.payloads do
    redis.call('LSET', list, i - 1, held.payloads[i])
  end
  redis.call('ZADD', q.held, held.due, key)
end

-- Releases up to max keys whose retry is due, first in line. Returns how many.
local function key_release_due(q, max, now)
  local due = redis.call('ZRANGEBYSCORE', q.held, '-inf', now, 'LIMIT', 0, max)
  for i = #due, 1, -1 do
    redis.call('ZREM', q.held, due[i])
    if redis.call('EXISTS', q.key_prefix .. due[i]) == 1 then
      redis.call('LPUSH', q.ready, due[i])
    end
  end
  return #due
end

-- How many of the first n tasks of a key's list to take, and those tasks: up to the first
-- suspect (see takeable), which comes alone and only when alone allows. Returns the
-- tasks and the suspect's count when it is taken.
local function key_takeable(q, list, n, alone, suspects)
  local head = redis.call('LRANGE', list, 0, n - 1)
  if not suspects then
    return head, 0
  end
  for i = 1, #head do
    local count = tonumber(redis.call('HGET', q.deliveries, delivery_key(head[i])) or '0')
    if count >= q.suspect_at then
      if i == 1 and alone then
        return { head[1] }, count
      end
      return { unpack(head, 1, i - 1) }, 0
    end
  end
  return head, 0
end

-- Takes tasks of up to want ready keys, from the head of each key's list: up to per_key of
-- one key (its tasks then run one after the other, in order, on this consumer). Claimed,
-- they stay at the head of their list, which holds the key; popped (at most once), they
-- leave it and the key goes back in line. A suspect (see takeable) comes alone and only
-- when alone allows; else it and the keys after it stay first in line. Returns the
-- payloads and the suspect's count (0: none).
local function take_keyed(q, want, per_key, claimed, alone, suspects)
  local items, suspect = {}, 0
  local keys = want > 0 and redis.call('LPOP', q.ready, want)
  if not keys then
    return items, 0
  end
  local back = #keys + 1
  for i = 1, #keys do
    local key = keys[i]
    local list = q.key_prefix .. key
    local got, count = key_takeable(q, list, math.min(per_key, want - #items),
      claimed and alone and #items == 0, claimed and suspects)
    if #got == 0 and redis.call('EXISTS', list) == 1 then
      back = i
      break
    end
    for j = 1, #got do
      items[#items + 1] = got[j]
    end
    if not claimed and #got > 0 then
      redis.call('LPOP', list, #got)
      if redis.call('EXISTS', list) == 1 then
        redis.call('RPUSH', q.ready, key)
      else
        keyed_count(q, 0, -1)
      end
      keyed_count(q, -#got, 0)
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
