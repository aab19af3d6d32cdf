-- Stamps a newer generation on a loaded budget window whose counters stay as they are (see
-- ReservationLoader.restamp: its fence moved without a rebuild or repair stamping it). Never on a
-- window that is not loaded, never backwards, and never while a repair of the window is under way
-- (begun less than ARGV[2] ms ago): a stamp first would make it drop the repair (reconcile.lua
-- refuses to apply a read older than the counters' generation). Its finish stamps; a pass that
-- ends at 'check' (nothing differed) does not, and the next try of the admission stamps then.
-- KEYS[1] the window's state hash   ARGV[1] generation   ARGV[2] after how many ms a repair counts as abandoned
if redis.replicate_commands then redis.replicate_commands() end
local s = KEYS[1]
if redis.call('HGET', s, 'loaded') ~= '1' then return 0 end
if tonumber(ARGV[1]) <= tonumber(redis.call('HGET', s, 'gen') or '0') then return 0 end
if redis.call('HEXISTS', s, 'recon') == 1 then
  local t = redis.call('TIME')
  local age = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(redis.call('HGET', s, 'reconAt') or '0')
  -- A clock that went back (a failover) does not keep a repair alive.
  if age >= 0 and age < tonumber(ARGV[2]) then return 0 end
end
redis.call('HSET', s, 'gen', ARGV[1])
return 1
