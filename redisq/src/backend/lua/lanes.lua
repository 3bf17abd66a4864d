-- Moving payloads between a queue's lanes, scheduled set and claimed lists.

-- Moves up to max due tasks from the scheduled set to the tail of the normal lane; when
-- track, records their new place in the state hash. Returns how many moved.
local function promote(scheduled, pending, counters, state, max, now, track)
  local due = redis.call('ZRANGEBYSCORE', scheduled, '-inf', now, 'LIMIT', 0, max)
  if #due == 0 then
    return 0
  end
  for i = 1, #due, CHUNK do
    redis.call('ZREM', scheduled, unpack(due, i, math.min(i + CHUNK - 1, #due)))
  end
  push_range(pending, due, 1, #due)
  local last = redis.call('HINCRBY', counters, PUSHED[NORMAL], #due)
  if track then
    local first = last - #due
    set_states(state, due, function(i)
      return state_queued(NORMAL, first + i)
    end)
  end
  return #due
end

-- Takes up to max tasks, high lane first, counting them in the lanes' taken counters;
-- into claimed unless it is false (at most once). When track, marks them processing in
-- the state hash. Taking nothing clears the signal list, so that a consumer blocked on
-- it wakes only for tasks pushed after; taking some trims it to a few tokens.
local function take(lanes, counters, claimed, signal, state, max, now, consumer, track)
  local items = {}
  for l = 1, 3 do
    local want = max - #items
    if want <= 0 then
      break
    end
    local got = redis.call('LPOP', lanes[l], want)
    if got then
      redis.call('HINCRBY', counters, TAKEN[l], #got)
      for j = 1, #got do
        items[#items + 1] = got[j]
      end
    end
  end
  if #items == 0 then
    redis.call('DEL', signal)
    return items
  end
  if claimed then
    push_range(claimed, items, 1, #items)
  end
  redis.call('LTRIM', signal, -SIGNAL_MAX, -1)
  if track then
    local value = state_processing(now, consumer)
    set_states(state, items, function()
      return value
    end)
  end
  return items
end

-- Moves every task of a consumer's claimed list back to the head of the normal lane, in
-- order, drops the consumer's lease, marks the tasks that have a state queued again (at
-- place 0: ahead of every counted task) and rings the signal; returns how many moved.
local function hand_back(claimed, pending, leases, consumer, signal, counters, state)
  local moved = 0
  local item = redis.call('LMOVE', claimed, pending, 'RIGHT', 'LEFT')
  while item do
    moved = moved + 1
    local id = payload_id(item)
    if id and redis.call('HEXISTS', state, id) == 1 then
      redis.call('HSET', state, id, state_queued(NORMAL, 0))
    end
    item = redis.call('LMOVE', claimed, pending, 'RIGHT', 'LEFT')
  end
  redis.call('ZREM', leases, consumer)
  if moved > 0 then
    redis.call('HINCRBY', counters, TAKEN_NORMAL, -moved)
    redis.call('RPUSH', signal, 1)
  end
  return moved
end
