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

-- Applies n outcomes from ARGV[at..], 7 values each (kind, id, attempts, started_at,
-- text, member, score), with the record and done-list keys of outcome k at
-- KEYS[keys + 2k - 1] and KEYS[keys + 2k]:
--   retry: member is the payload, due at score (Unix ms); text the error
--   dead:  member is the dead-letter record, scored score (Unix µs); text the reason
--   done:  text is the result
-- Returns whether any dead letter was written.
local function apply_outcomes(q, n, at, keys, now, consumer, ttl_done, ttl_dead)
  local any_dead = false
  for k = 1, n do
    local a = at + 7 * (k - 1)
    local kind, id, attempts, started = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
    local record, done = KEYS[keys + 2 * k - 1], KEYS[keys + 2 * k]
    redis.call('HDEL', q.state, id)
    if kind == 'retry' then
      redis.call('ZADD', q.scheduled, ARGV[a + 6], ARGV[a + 5])
      set_record(record, F.status, S.failed, F.attempts, attempts, F.error, ARGV[a + 4],
        F.finished_at, now, F.started_at, started, F.worker, consumer)
    elseif kind == 'dead' then
      redis.call('ZADD', q.dead, ARGV[a + 6], ARGV[a + 5])
      any_dead = true
      if set_record(record, F.status, S.dead, F.attempts, attempts, F.error, ARGV[a + 4],
          F.finished_at, now, F.started_at, started, F.worker, consumer) then
        finished(record, done, ttl_dead)
      end
    elseif kind == 'done' then
      if set_record(record, F.status, S.done, F.attempts, attempts, F.result, ARGV[a + 4],
          F.finished_at, now, F.started_at, started, F.worker, consumer) then
        finished(record, done, ttl_done)
      end
    else
      return redis.error_reply('unknown outcome ' .. tostring(kind))
    end
  end
  return any_dead
end

-- Drops the oldest dead letters past the bounds: older than max_age ms (0: no bound),
-- beyond max records.
local function trim_dead(dead, max, max_age, now)
  if max_age > 0 then
    redis.call('ZREMRANGEBYSCORE', dead, '-inf', '(' .. ((now - max_age) * 1000))
  end
  redis.call('ZREMRANGEBYRANK', dead, 0, -(max + 1))
end

-- Adds a settle's counts to the queue's statistics: processed, failed, retried and dead
-- counts, the minute's throughput (the hash keeps the last few minutes) and latency
-- samples ("wait:run,…" in ms).
local function tally(q, processed, failed, retried, dead, samples, now)
  if processed > 0 then
    redis.call('HINCRBY', q.stats, STAT.processed, processed)
    redis.call('HSET', q.stats, STAT.last_processed, now)
    local minute = math.floor(now / MINUTE_MS)
    redis.call('HINCRBY', q.throughput, minute, processed)
    redis.call('EXPIRE', q.throughput, THROUGHPUT_TTL)
    if redis.call('HLEN', q.throughput) > 3 then
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
    for sample in string.gmatch(samples, '[^,]+') do
      redis.call('LPUSH', q.latency, sample)
    end
    redis.call('LTRIM', q.latency, 0, LATENCY_MAX - 1)
  end
end
