-- Return a consumer's claimed tasks to the head of the pending list, in order, and drop its lease.
-- Used for expired leases (ARGV[3] = "expired": only if the lease has run out) and for a
-- graceful hand-back (ARGV[3] = "now"), after acknowledging ARGV[2] tasks done at the head.
-- KEYS[1] pending list, KEYS[2] the consumer's claimed list, KEYS[3] leases zset
-- ARGV[1] consumer id, ARGV[2] tasks done, ARGV[3] "expired" or "now"
if ARGV[3] == 'expired' then
  local deadline = redis.call('ZSCORE', KEYS[3], ARGV[1])
  if deadline then
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    if tonumber(deadline) > now then
      return -1
    end
  end
end
local done = tonumber(ARGV[2])
if done > 0 then
  redis.call('LTRIM', KEYS[2], done, -1)
end
local moved = 0
while redis.call('LMOVE', KEYS[2], KEYS[1], 'RIGHT', 'LEFT') do
  moved = moved + 1
end
redis.call('ZREM', KEYS[3], ARGV[1])
return moved
