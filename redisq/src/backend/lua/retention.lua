-- Applies the dead-letter bounds now (workers call it periodically, so that the age bound
-- holds without new dead letters). KEYS: the queue's keys (queue_keys()).
-- ARGV[1] count bound, [2] age bound (ms), [3] byte bound. Returns how many went.
local q = queue()
return trim_dead(q, tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), now_ms())
