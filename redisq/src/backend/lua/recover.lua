-- When a consumer's lease has run out, returns its claimed tasks to the head of the
-- normal lane, in order, and drops the lease; -1 when the lease is still current.
-- KEYS[1] normal lane, [2] the consumer's claimed list, [3] leases, [4] signal,
-- [5] counters, [6] state. ARGV[1] consumer id
local deadline = redis.call('ZSCORE', KEYS[3], ARGV[1])
if deadline and tonumber(deadline) > now_ms() then
  return -1
end
return hand_back(KEYS[2], KEYS[1], KEYS[3], ARGV[1], KEYS[4], KEYS[5], KEYS[6])
