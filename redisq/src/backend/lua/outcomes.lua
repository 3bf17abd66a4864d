-- Recording what became of finished tasks: their records, retries, dead letters and the
-- queue's statistics.

-- Marks a record finished: wakes its waiters (`wait`) and lets it expire after ttl.
local function finished(record, done, ttl)
  if redis.call('HEXISTS', record, F.waiting) == 1 then
    redis.call('RPUSH', done, 1)
    redis.call('EXPIRE', done, DONE_TTL)
  end
  redis.call('EXPIRE', record, ttl)
end

-- Adds a dead-letter record, scored by the server's clock in microseconds, and counts its
-- bytes.
local function add_dead(q, letter, score)
  if redis.call('ZADD', q.dead, score, letter) == 1 then
    redis.call('HINCRBY', q.counters, DEAD_BYTES, #letter)
  end
end

-- Applies n outcomes from ARGV[at..], 7 values each (kind, id, attempts, started_at,
-- text, member, delay), with the record and done-list keys of outcome k at
-- KEYS[keys + 2k - 1] and KEYS[keys + 2k]:
--   retry: member is the payload, due delay ms from now; text the error. Tasks with a key
--          are kept in q.retried[key] for the acknowledgement to put back at the head of
--          their key's list, in their order, the key held until the last is due (every
--          retry is in the settle's last call, with the acknowledgement);
--          on an ordered queue (ordered) it is kept in q.heads for the caller to put
--          back at the head of the queue; any other waits in the scheduled set
--   dead:  member is the dead-letter record; text the reason
--   done:  text is the result
--   mark:  only the record: member is the status (failed or dead), text the error
-- Returns whether any dead letter was written.
local function apply_outcomes(q, n, at, keys, now, consumer, ttl_done, ttl_dead, ordered)
  local any_dead = false
  local score = n > 0 and now_us() or 0
  for k = 1, n do
    local a = at + 7 * (k - 1)
    local kind, id, attempts, started = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
    local text, member = ARGV[a + 4], ARGV[a + 5]
    local record, done = KEYS[keys + 2 * k - 1], KEYS[keys + 2 * k]
    redis.call('HDEL', q.state, id)
    local status, field = nil, F.error
    if kind == 'retry' then
      local due, key = now + tonumber(ARGV[a + 6]), payload_key(member)
      if key then
        local held = q.retried[key]
        if not held then
          held = { due = due, payloads = {} }
          q.retried[key] = held
        end
        held.payloads[#held.payloads + 1] = member
        held.due = math.max(held.due, due)
        q.retried_ids[id] = true
      elseif ordered then
        q.heads[#q.heads + 1] = member
        q.hold_ms = tonumber(ARGV[a + 6])
      else
        redis.call('ZADD', q.scheduled, due, member)
      end
      status = S.failed
    elseif kind == 'dead' then
      add_dead(q, member, score + k)
      any_dead = true
      status = S.dead
    elseif kind == 'done' then
      status, field = S.done, F.result
    elseif kind == 'mark' then
      status = member
    else
      return redis.error_reply('unknown outcome ' .. tostring(kind))
    end
    if set_record(record, F.status, status, F.attempts, attempts, field, text,
        F.finished_at, now, F.started_at, started, F.worker, consumer) then
      if status == S.done then
        finished(record, done, ttl_done)
      elseif status == S.dead then
        finished(record, done, ttl_dead)
      end
    end
  end
  return any_dead
end

-- Removes one dead letter and its bytes.
local function remove_dead(q, letter)
  if redis.call('ZREM', q.dead, letter) == 1 then
    redis.call('HINCRBY', q.counters, DEAD_BYTES, -#letter)
  end
end

-- Drops the oldest dead letters past the bounds: older than max_age ms (0: no bound),
-- beyond max records, beyond max_bytes bytes; at most CHUNK per call (a later call goes
-- on). Returns how many went.
local function trim_dead(q, max, max_age, max_bytes, now)
  local dropped = 0
  if max_age > 0 then
    local old = redis.call('ZRANGEBYSCORE', q.dead, '-inf', '(' .. ((now - max_age) * 1000),
      'LIMIT', 0, CHUNK)
    for i = 1, #old do
      remove_dead(q, old[i])
    end
    dropped = #old
  end
  local excess = math.min(redis.call('ZCARD', q.dead) - max, CHUNK - dropped)
  if excess > 0 then
    local oldest = redis.call('ZRANGE', q.dead, 0, excess - 1)
    for i = 1, #oldest do
      remove_dead(q, oldest[i])
    end
    dropped = dropped + #oldest
  end
  while dropped < CHUNK and tonumber(redis.call('HGET', q.counters, DEAD_BYTES) or '0') > max_bytes do
    local oldest = redis.call('ZRANGE', q.dead, 0, 0)
    if #oldest == 0 then
      redis.call('HSET', q.counters, DEAD_BYTES, 0)
      break
    end
    remove_dead(q, oldest[1])
    dropped = dropped + 1
  end
  return dropped
end

-- Adds a settle's counts to the queue's statistics: processed, failed, retried and dead
-- counts, the minute's throughput (the hash keeps the last few minutes) and latency
-- samples ("wait:run,…" in ms).
local function tally(q, processed, failed, retried, dead, samples, now)
  if processed > 0 then
    redis.call('HINCRBY', q.stats, STAT.processed, processed)
    redis.call('HSET', q.stats, STAT.last_processed, now)
    local minute = math.floor(now / MINUTE_MS)
    -- A minute's first count: the hash lives on for a few minutes, without older ones.
    if redis.call('HINCRBY', q.throughput, minute, processed) == processed then
      redis.call('EXPIRE', q.throughput, THROUGHPUT_TTL)
      for _, field in ipairs(redis.call('HKEYS', q.throughput)) do
        if tonumber(field) < minute - 1 then
          redis.call('HDEL', q.throughput, field)
        end
      end
    end
  end
  if failed > 0 then
    redis.call('HINCRBY', q.stats, STAT.failed, failed)
  end
  if retried > 0 then
    redis.call('HINCRBY', q.stats, STAT.retried, retried)
  end
  if dead > 0 then
    redis.call('HINCRBY', q.stats, STAT.dead, dead)
  end
  if samples ~= '' then
    local each = {}
    for sample in string.gmatch(samples, '[^,]+') do
      each[#each + 1] = sample
    end
    redis.call('LPUSH', q.latency, unpack(each))
    redis.call('LTRIM', q.latency, 0, LATENCY_MAX - 1)
  end
end
