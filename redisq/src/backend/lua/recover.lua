-- Hands a consumer's claimed tasks back to the head of their lanes, in order.
-- KEYS: the queue's keys (queue_keys()) with the consumer's claimed list and segments.
-- ARGV[1] consumer id, [2] mode, [3] its token, [4] how many to keep.
-- "expired": only when its lease has run out (by the server's clock), all of them,
-- counting a delivery for each, and its lease and fence go; -1 while the lease is current.
-- "unstarted": those after the first keep (the task it runs and those it finished), when
-- the token is its fence (-1 otherwise); it keeps its lease.
local q = queue()
local consumer, mode = ARGV[1], ARGV[2]
if mode == 'expired' then
  local deadline = redis.call('ZSCORE', q.leases, consumer)
  if deadline and tonumber(deadline) > now_ms() then
    return -1
  end
  local moved = hand_back(q, 0, true)
  drop_lease(q, consumer)
  return moved
end
if fence_parse(redis.call('HGET', q.fences, consumer)) ~= tonumber(ARGV[3]) then
  return -1
end
return hand_back(q, tonumber(ARGV[4]), false)
