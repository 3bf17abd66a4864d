-- Moving payloads between a queue's lanes, scheduled set and claimed lists.

-- Releases the keys whose retry is due, and moves up to max due tasks from the scheduled
-- set to the tail of the normal lane (those with a key to their key's list); when track,
-- records their new place in the state hash. Returns how many moved.
local function promote(q, max, now, track)
  key_release_due(q, max, now)
  local due = redis.call('ZRANGEBYSCORE', q.scheduled, '-inf', now, 'LIMIT', 0, max)
  if #due == 0 then
    return 0
  end
  each_chunk('ZREM', q.scheduled, due)
  local plain, keyed = {}, {}
  for i = 1, #due do
    local key = payload_key(due[i])
    if key then
      keyed_count(q, 1, key_push(q, key, due, i, i))
      keyed[#keyed + 1] = due[i]
    else
      plain[#plain + 1] = due[i]
    end
  end
  if track and #keyed > 0 then
    set_states(q.state, keyed, function()
      return STATE_KEYED
    end)
  end
  if #plain == 0 then
    ring(q.signal)
    return #due
  end
  push_range(q.lane_normal, plain, 1, #plain)
  local last = redis.call('HINCRBY', q.counters, PUSHED[NORMAL], #plain)
  if track then
    local first = last - #plain
    set_states(q.state, plain, function(i)
      return state_queued(NORMAL, first + i)
    end)
  end
  return #due
end

-- How many of the up to want tasks at the head of lane to take: all, unless one of them
-- had leases run out while held q.suspect_at times (a suspect, maybe a poison pill: one
-- crash alone makes no suspect, so that a worker killed holding a batch costs no more
-- than the batch run again), which is taken alone, first or not at all. Returns the count and, when the first is a suspect, its count.
local function takeable(q, lane, want, first)
  local head = redis.call('LRANGE', lane, 0, want - 1)
  for i = 1, #head do
    local expired = tonumber(redis.call('HGET', q.deliveries, delivery_key(head[i])) or '0')
    if expired >= q.suspect_at then
      if i == 1 and first then
        return 1, tonumber(expired)
      end
      return i - 1, 0
    end
  end
  return #head, 0
end

-- Takes up to max tasks, the heads of ready keys first (take_keyed), then the high lane
-- first, into the claimed list, or only pops them (at most once, claimed false). While the claimed list holds only normal-lane tasks it has no
-- segments; once a claim takes from another lane, segments (one per lane a claim took
-- from, the earlier tasks as one normal segment) describe all of it, so that a hand-back
-- restores each lane (segmented says which, before and after). When suspects (the queue
-- has delivery counts), a suspect (see takeable) comes alone, and only when alone allows.
-- When track, marks the tasks processing in the state hash. Taking nothing clears the
-- signal list, so that a consumer blocked on it wakes only for tasks pushed after; taking
-- some trims it to a few tokens. Returns the payloads, the suspect's count (0: none) and
-- whether the claimed list is segmented.
local function take(q, max, per_key, now, consumer, track, claimed, alone, suspects,
    segmented)
  local items, suspect = take_keyed(q, max, per_key, claimed, alone, suspects)
  local parts = {}
  if #items > 0 then
    parts[1] = { KEYED, #items }
  end
  for l = 1, 3 do
    local want = max - #items
    if want <= 0 or suspect > 0 then
      break
    end
    local lane = q.lanes[l]
    local n, count = want, 0
    if claimed and suspects then
      n, count = takeable(q, lane, want, alone and #items == 0)
    end
    local got = n > 0 and redis.call('LPOP', lane, n)
    if got then
      for j = 1, #got do
        items[#items + 1] = got[j]
      end
      parts[#parts + 1] = { l, #got }
    end
    suspect = count
    if count > 0 or (suspects and n < want and redis.call('LLEN', lane) > 0) then
      break
    end
  end
  if #items == 0 then
    redis.call('DEL', q.signal)
    return items, 0, segmented
  end
  if claimed then
    if not segmented and (#parts > 1 or parts[1][1] ~= NORMAL) then
      local held = redis.call('LLEN', q.claimed)
      if held > 0 then
        redis.call('RPUSH', q.segments, segment_value(NORMAL, held))
      end
      segmented = true
    end
    push_range(q.claimed, items, 1, #items)
    if segmented then
      for i = 1, #parts do
        redis.call('RPUSH', q.segments, segment_value(parts[i][1], parts[i][2]))
      end
    end
  end
  redis.call('LTRIM', q.signal, -SIGNAL_MAX, -1)
  if track then
    local value = state_processing(now, consumer)
    set_states(q.state, items, function()
      return value
    end)
  end
  return items, suspect, segmented
end

-- The keys of the claimed tasks from first to last (0-based, -1: the end) that came from
-- key lists, with how many tasks of each, in a table by key.
local function claimed_keys(q, first, last)
  local keys = {}
  for _, item in ipairs(redis.call('LRANGE', q.claimed, first, last)) do
    local key = payload_key(item)
    if key then
      keys[key] = (keys[key] or 0) + 1
    end
  end
  return keys
end

-- The keyed tasks among the acked (the first done of the claimed list) leave the head of
-- their key's list (key_done), but for a key with a retry (q.retried): its retried tasks
-- are rewritten at its head, with the ones the consumer did not start after them, their
-- state back to keyed (key_hold).
local function finish_keyed(q, acked, done)
  local kept = redis.call('LLEN', q.claimed) > done and claimed_keys(q, done, -1) or {}
  -- Per key, in claimed order: how many were acknowledged, and, for a key with a retry,
  -- how many finished before it (the ones after the retry did not start: they stay).
  local count, before, unstarted = {}, {}, {}
  for _, item in ipairs(acked) do
    local key = payload_key(item)
    if key then
      count[key] = (count[key] or 0) + 1
      local id = payload_id(item)
      if q.retried[key] and not before[key] and q.retried_ids[id] then
        before[key] = count[key] - 1
      elseif before[key] and not q.retried_ids[id] and id then
        unstarted[#unstarted + 1] = id
      end
    end
  end
  local tasks, keys = 0, 0
  q.next_up = {}
  for key, n in pairs(count) do
    if q.retried[key] then
      key_hold(q, key, before[key] or 0, q.retried[key])
      tasks = tasks - (before[key] or 0)
    else
      keys = keys + key_done(q, key, n, kept[key])
      tasks = tasks - n
    end
  end
  push_range(q.ready, q.next_up, 1, #q.next_up)
  keyed_count(q, tasks, keys)
  for _, id in ipairs(unstarted) do
    if redis.call('HEXISTS', q.state, id) == 1 then
      redis.call('HSET', q.state, id, STATE_KEYED)
    end
  end
end

-- Drops the first done tasks of the claimed list (acknowledged) and their segments,
-- forgets their delivery counts (when suspects), and removes those that came from a key
-- list from the head of it (key_done), but for a key with a retry (q.retried): its
-- retried tasks are rewritten at its head, with the ones the consumer did not start after
-- them (key_hold).
-- Returns whether the list is still segmented.
local function acknowledge(q, done, suspects, segmented)
  if done <= 0 then
    return segmented
  end
  local left, keyed = done, false
  while segmented and left > 0 do
    local segment = redis.call('LPOP', q.segments)
    if not segment then
      segmented = false
      break
    end
    local l, count = segment_parse(segment)
    keyed = keyed or l == KEYED
    if count > left then
      redis.call('LPUSH', q.segments, segment_value(l, count - left))
    end
    left = left - math.min(count, left)
  end
  local acked = (suspects or keyed) and redis.call('LRANGE', q.claimed, 0, done - 1) or {}
  if suspects then
    for i = 1, #acked do
      redis.call('HDEL', q.deliveries, delivery_key(acked[i]))
    end
  end
  if keyed then
    finish_keyed(q, acked, done)
  end
  redis.call('LTRIM', q.claimed, done, -1)
  return segmented and redis.call('LLEN', q.segments) > 0
end

-- Moves the tasks of a consumer's claimed list after the first keep back to the head of
-- the lanes they came from, in their order, and marks those that have a state queued at
-- their exact place. When expired (the lease ran out), counts a delivery for each, so
-- that a task that kills its worker is found out. Returns how many moved.
local function hand_back(q, keep, expired)
  local moved, returned = {}, {}
  -- Keys with tasks in the part kept stay with the consumer.
  local kept = keep > 0 and claimed_keys(q, 0, keep - 1) or {}
  local len = redis.call('LLEN', q.claimed)
  local segment = redis.call('RPOP', q.segments)
  while len > keep do
    local l, count = NORMAL, len - keep
    if segment then
      l, count = segment_parse(segment)
    end
    local n = math.min(count, len - keep)
    local lane = q.lanes[l] or q.lane_normal
    for _ = 1, n do
      local item
      local key = l == KEYED and payload_key(redis.call('LINDEX', q.claimed, -1))
      if key then
        -- It never left the head of its key's list.
        item = redis.call('RPOP', q.claimed)
        if not kept[key] then
          returned[key] = true
        end
      else
        item = redis.call('LMOVE', q.claimed, lane, 'RIGHT', 'LEFT')
      end
      moved[#moved + 1] = { key and KEYED or (q.lanes[l] and l or NORMAL), item }
      if expired then
        redis.call('HINCRBY', q.deliveries, delivery_key(item), 1)
      end
    end
    len = len - n
    if n < count then
      redis.call('RPUSH', q.segments, segment_value(l, count - n))
      segment = nil
    elseif len > keep then
      segment = redis.call('RPOP', q.segments)
    end
  end
  if #moved == 0 then
    if segment then
      redis.call('RPUSH', q.segments, segment)
    end
    return 0
  end
  -- Each key handed back is first in line again.
  for key in pairs(returned) do
    redis.call('LPUSH', q.ready, key)
  end
  -- Exact places: in each lane the moved tasks now lead, the last moved first.
  local ahead = { 0, 0, 0 }
  for i = #moved, 1, -1 do
    local l, item = moved[i][1], moved[i][2]
    local id = payload_id(item)
    if l == KEYED then
      if id and redis.call('HEXISTS', q.state, id) == 1 then
        redis.call('HSET', q.state, id, STATE_KEYED)
      end
    elseif id and redis.call('HEXISTS', q.state, id) == 1 then
      local lane = q.lanes[l]
      local pushed = tonumber(redis.call('HGET', q.counters, PUSHED[l]) or '0')
      local seq = pushed - redis.call('LLEN', lane) + 1 + ahead[l]
      redis.call('HSET', q.state, id, state_queued(l, seq))
    end
    if l ~= KEYED then
      ahead[l] = ahead[l] + 1
    end
  end
  ring(q.signal)
  return #moved
end

-- Ends a consumer's hold on the queue: its lease and fence go, and its ownership of an
-- ordered queue.
local function drop_lease(q, consumer)
  redis.call('ZREM', q.leases, consumer)
  redis.call('HDEL', q.fences, consumer)
  if redis.call('HGET', q.owner, OWNER.consumer) == consumer then
    redis.call('DEL', q.owner)
  end
  if redis.call('LLEN', q.claimed) == 0 then
    redis.call('DEL', q.segments)
  end
end
