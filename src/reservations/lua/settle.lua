-- Settles usage into the counters in one step: removes holds and adds committed spend.
--
-- KEYS: ARGV[1] removals as (state, holds zset, amounts hash) triples, then ARGV[2] state hashes to add to.
-- ARGV[3 ..]: the reservation id of each removal, then the amount (decimal string) of each addition.
-- A removal of a hold that is gone (expired, released, settled) changes nothing. An addition counts
-- in a loaded window; in a window being rebuilt it is kept aside (`pending`) and added when the
-- rebuild finishes; in a window nobody has loaded it is left to the rebuild, which reads PostgreSQL.
-- While the reconciler compares a window (`recon` present) additions are also noted there.
-- Returns the number of holds removed.

local removals = tonumber(ARGV[1])
local additions = tonumber(ARGV[2])
local removed = 0
for i = 1, removals do
  local s, z, a = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local member = ARGV[2 + i]
  local amount = redis.call('HGET', a, member)
  if amount then
    redis.call('HDEL', a, member)
    redis.call('ZREM', z, member)
    redis.call('HINCRBY', s, 'held', '-' .. amount)
    removed = removed + 1
  end
end
for j = 1, additions do
  local s = KEYS[3 * removals + j]
  local amount = ARGV[2 + removals + j]
  if redis.call('HGET', s, 'loaded') == '1' then
    redis.call('HINCRBY', s, 'committed', amount)
    if redis.call('HEXISTS', s, 'recon') == 1 then redis.call('HINCRBY', s, 'recon', amount) end
  elseif redis.call('HEXISTS', s, 'pending') == 1 then
    redis.call('HINCRBY', s, 'pending', amount)
  end
end
return removed
