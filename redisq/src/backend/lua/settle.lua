-- Settles a consumer's finished work and takes more, atomically: the claim protocol.
-- The layout below is built by backend/claim.rs (`Settle`), and only there.
-- KEYS[1] normal lane, [2] the consumer's claimed list, [3] leases, [4] scheduled,
-- [5] dead, [6] high lane, [7] low lane, [8] signal, [9] stats, [10] throughput,
-- [11] latency, [12] counters, [13] state; then two per outcome: its record, its done list.
-- ARGV[1] consumer id, [2] lease (ms), [3] mode, [4] tasks done at the head of the
-- claimed list, [5] how many to take at most, [6] "1" to track task states, [7] dead-letter
-- count bound, [8] dead-letter age bound (ms), [9] TTL of a done record (s), [10] TTL of
-- a dead record (s), [11..14] processed, failed, retried, dead counts, [15] latency
-- samples, [16] n ids whose state to forget, then the ids, then the number of outcomes and
-- the outcomes (see apply_outcomes).
-- Modes: "claim" acknowledges, records, promotes due tasks, renews the lease and claims
-- up to max tasks into the claimed list; "pop" (at most once) records, promotes and pops;
-- "record" only records (the leading part of a settle too large for one call); "release"
-- acknowledges, records and hands every other claimed task back, dropping the lease.
local q = { pending = KEYS[1], claimed = KEYS[2], leases = KEYS[3], scheduled = KEYS[4],
  dead = KEYS[5], signal = KEYS[8], stats = KEYS[9], throughput = KEYS[10],
  latency = KEYS[11], counters = KEYS[12], state = KEYS[13] }
local now = now_ms()
local consumer, mode = ARGV[1], ARGV[3]
local done, max, track = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6] == '1'

if done > 0 and (mode == 'claim' or mode == 'release') then
  redis.call('LTRIM', q.claimed, done, -1)
end
local forget = tonumber(ARGV[16])
for i = 17, 16 + forget, CHUNK do
  redis.call('HDEL', q.state, unpack(ARGV, i, math.min(i + CHUNK - 1, 16 + forget)))
end
local at = 17 + forget
local any_dead = apply_outcomes(q, tonumber(ARGV[at]), at + 1, 13, now, consumer,
  ARGV[9], ARGV[10])
if type(any_dead) == 'table' then
  return any_dead
end
if any_dead then
  trim_dead(q.dead, tonumber(ARGV[7]), tonumber(ARGV[8]), now)
end
tally(q, tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13]), tonumber(ARGV[14]),
  ARGV[15], now)

if mode == 'record' then
  return {}
end
if mode == 'release' then
  return { hand_back(q.claimed, q.pending, q.leases, consumer, q.signal, q.counters, q.state) }
end
promote(q.scheduled, q.pending, q.counters, q.state, math.max(max, 100), now, track)
local claimed = false
if mode == 'claim' then
  redis.call('ZADD', q.leases, now + tonumber(ARGV[2]), consumer)
  claimed = q.claimed
end
if max <= 0 then
  return {}
end
return take({ KEYS[6], KEYS[1], KEYS[7] }, q.counters, claimed, q.signal, q.state, max, now,
  consumer, track)
