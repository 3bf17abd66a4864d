-- Shared by the scripts that settle a consumer's work; prepended to each of them.

-- Now in Unix milliseconds, by the Redis server's clock.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Applies the outcomes of failed tasks: ARGV[first .. first + 3n - 1] holds n triples
-- (kind, score, member): kind "retry" adds member (a payload) to the scheduled set due at
-- score (Unix ms); kind "dead" adds member (a dead-letter record) to the dead set at score
-- (Unix microseconds). The dead set is then trimmed to dead_max records no older than
-- dead_age ms (0: no age bound).
local function apply_effects(scheduled, dead, first, n, dead_max, dead_age, now)
  local any_dead = false
  for i = 0, n - 1 do
    local kind = ARGV[first + 3 * i]
    local score = ARGV[first + 3 * i + 1]
    local member = ARGV[first + 3 * i + 2]
    if kind == 'retry' then
      redis.call('ZADD', scheduled, score, member)
    elseif kind == 'dead' then
      redis.call('ZADD', dead, score, member)
      any_dead = true
    end
  end
  if any_dead then
    if dead_age > 0 then
      redis.call('ZREMRANGEBYSCORE', dead, '-inf', '(' .. ((now - dead_age) * 1000))
    end
    redis.call('ZREMRANGEBYRANK', dead, 0, -(dead_max + 1))
  end
end

-- Moves up to max due tasks from the scheduled set to the tail of the pending list.
local function promote(scheduled, pending, max, now)
  local due = redis.call('ZRANGEBYSCORE', scheduled, '-inf', now, 'LIMIT', 0, max)
  if #due > 0 then
    redis.call('ZREM', scheduled, unpack(due))
    redis.call('RPUSH', pending, unpack(due))
  end
  return #due
end
