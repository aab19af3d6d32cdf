-- Settles usage into the counters in one step: removes holds and adds committed spend.
--
-- KEYS: ARGV[1] removals as (state, holds zset, amounts hash, removed-while-loading set)
--   quadruples, then ARGV[2] additions as (state, pending hash, seen set) triples.
-- ARGV[3 ..]: the reservation id of each removal, then (record id, amount) of each addition.
--
-- A removal of a hold that is gone (expired, released, settled) changes nothing; in a window
-- being rebuilt it is noted, so the rebuild does not bring back a hold PostgreSQL still showed.
-- An addition counts in a loaded window, unless the rebuild that loaded it already counted the
-- record (it is in `seen`); in a window being rebuilt it is kept aside per record (`pending`) and
-- the rebuild adds those its PostgreSQL read did not show; in a window nobody has loaded it is
-- left to the rebuild, which reads PostgreSQL. While the reconciler compares a window (`recon`
-- present) additions are also noted per record in `pending`. Returns the number of holds removed.

local removals = tonumber(ARGV[1])
local additions = tonumber(ARGV[2])
local removed = 0
for i = 1, removals do
  local s, z, a, r = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1], KEYS[4 * i]
  local member = ARGV[2 + i]
  local amount = redis.call('HGET', a, member)
  if amount then
    redis.call('HDEL', a, member)
    redis.call('ZREM', z, member)
    redis.call('HINCRBY', s, 'held', '-' .. amount)
    removed = removed + 1
  elseif redis.call('HEXISTS', s, 'loading') == 1 then
    redis.call('SADD', r, member)
    redis.call('PEXPIRE', r, 86400000)
  end
end
local base = 4 * removals
for j = 1, additions do
  local s, p, seen = KEYS[base + 3 * j - 2], KEYS[base + 3 * j - 1], KEYS[base + 3 * j]
  local record, amount = ARGV[2 + removals + 2 * j - 1], ARGV[2 + removals + 2 * j]
  if redis.call('HGET', s, 'loaded') == '1' then
    if redis.call('SREM', seen, record) == 0 then
      redis.call('HINCRBY', s, 'committed', amount)
      if redis.call('HEXISTS', s, 'recon') == 1 then
        redis.call('HINCRBY', p, record, amount)
        redis.call('PEXPIRE', p, 86400000)
      end
    end
  elseif redis.call('HEXISTS', s, 'loading') == 1 then
    redis.call('HINCRBY', p, record, amount)
    redis.call('PEXPIRE', p, 86400000)
  end
end
return removed
