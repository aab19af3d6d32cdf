-- Settles usage into the counters in one step: removes holds and adds committed spend.
--
-- KEYS: ARGV[1] removals as (state, holds zset, amounts hash, removed-while-loading set)
--   quadruples, then ARGV[2] windows with additions as (state, pending hash, seen set) triples.
-- ARGV[3 ..]: the reservation id of each removal, then per window: the number n of its
--   additions, their exact sum (summed by the caller: Lua numbers are doubles), and n
--   (record id, amount) pairs. A window gets at most one addition per record.
--
-- A removal of a hold that is gone (expired, released, settled) changes nothing; in a window
-- being rebuilt it is noted, so the rebuild does not bring back a hold PostgreSQL still showed.
-- An addition counts in a loaded window, unless the rebuild that loaded it already counted the
-- record (it is in `seen`); in a window being rebuilt it is kept aside per record (`pending`) and
-- the rebuild adds those its PostgreSQL read did not show; in a window nobody has loaded it is
-- left to the rebuild, which reads PostgreSQL. While the reconciler compares a window (`recon`
-- present) additions are also noted per record in `pending`. A loaded window that no rebuild marked
-- records in (`seen` absent) and no reconciler compares takes the sum in one HINCRBY: the same
-- result as adding each record. Returns the number of holds removed.

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
    if amount ~= '0' then redis.call('HINCRBY', s, 'held', '-' .. amount) end
    removed = removed + 1
  elseif redis.call('HEXISTS', s, 'loading') == 1 then
    redis.call('SADD', r, member)
    redis.call('PEXPIRE', r, 86400000)
  end
end
local at = 2 + removals
for j = 1, additions do
  local s, p, seen = KEYS[4 * removals + 3 * j - 2], KEYS[4 * removals + 3 * j - 1], KEYS[4 * removals + 3 * j]
  local n, sum = tonumber(ARGV[at + 1]), ARGV[at + 2]
  local first = at + 3
  at = at + 2 + 2 * n
  if redis.call('HGET', s, 'loaded') == '1' then
    local recon = redis.call('HEXISTS', s, 'recon') == 1
    if not recon and redis.call('EXISTS', seen) == 0 then
      redis.call('HINCRBY', s, 'committed', sum)
    else
      for k = 0, n - 1 do
        local record, amount = ARGV[first + 2 * k], ARGV[first + 2 * k + 1]
        if redis.call('SREM', seen, record) == 0 then
          redis.call('HINCRBY', s, 'committed', amount)
          if recon then
            redis.call('HINCRBY', p, record, amount)
            redis.call('PEXPIRE', p, 86400000)
          end
        end
      end
    end
  elseif redis.call('HEXISTS', s, 'loading') == 1 then
    for k = 0, n - 1 do
      redis.call('HINCRBY', p, ARGV[first + 2 * k], ARGV[first + 2 * k + 1])
    end
    redis.call('PEXPIRE', p, 86400000)
  end
end
return removed
