-- The reconciler's repair of one loaded budget window, in two calls (as a rebuild, but the window
-- stays loaded and keeps granting meanwhile).
-- ARGV[1] = 'begin', ARGV[2] this run's token, ARGV[3] after how many ms another run's repair is
--   taken over (it died): from now on, spend settled into the window is also noted per record
--   (`pending`); returns 1 when the window is loaded and no other run is repairing it, else 0
--   (nothing to compare now).
-- ARGV[1] = 'check': as 'finish' (ARGV[3] unused), without the fence moved first: when the
--   counters already equal what 'finish' would set, ends the run, changes nothing and returns
--   'equal'; else returns 'differs' and leaves the run begun, for a 'finish' from a fenced read
--   (holds in flight differ here, so only quiet windows end at 'check').
-- ARGV[1] = 'finish': ARGV[2] committed read from PostgreSQL after 'begin', ARGV[3] the new
--   generation (the budget's fence value the repair set), ARGV[4] the number of records that read
--   counted that may be settled around now, their ids, then (reservation id, amount, expires at ms)
--   per live hold in PostgreSQL, and last the token 'begin' was given (only its run may finish).
--   Sets committed = the read + the records
--   settled since 'begin' it did not show, and the holds to PostgreSQL's live ones.
--   Returns {old committed, new committed, old held, new held}, or {} when the window is no
--   longer loaded or was not begun.
-- KEYS: state, holds zset, amounts hash, pending hash, seen set.
-- Redis before 5 needs this to write after TIME; later versions always replicate effects.
if redis.replicate_commands then redis.replicate_commands() end

local s, z, a, p, seenKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
if redis.call('HGET', s, 'loaded') ~= '1' then
  if ARGV[1] == 'begin' then return 0 end
  return {}
end
local token = ARGV[2]
if ARGV[1] ~= 'begin' then
  token = ARGV[#ARGV]
  ARGV[#ARGV] = nil
end
local mine = redis.call('HGET', s, 'recon') == token
-- 'finish' applies its read only over counters of an older generation: a rebuild that bumped the
-- fence after this repair's read may have stamped them since, and rows decided from them (stored,
-- their fence being theirs) would not be in this read. Then the repair is dropped (the next pass
-- compares again).
if ARGV[1] == 'finish' and tonumber(ARGV[3]) <= tonumber(redis.call('HGET', s, 'gen') or '0') then
  if mine then
    redis.call('DEL', p)
    redis.call('HDEL', s, 'recon', 'reconAt')
  end
  return {}
end
-- Stamped even when there is nothing to repair (below): the fence moved, and the counters are
-- valid under it (only a repair or a rebuild with an older read could make them not).
if ARGV[1] == 'finish' then redis.call('HSET', s, 'gen', ARGV[3]) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[1] == 'begin' then
  -- One repair of a window at a time: another run's, begun less than ARGV[3] ms ago, keeps what it noted.
  -- (A clock that went back, after a failover, does not keep the other run alive.)
  local age = now - tonumber(redis.call('HGET', s, 'reconAt') or '0')
  if redis.call('HEXISTS', s, 'recon') == 1 and age >= 0 and age < tonumber(ARGV[3]) then return 0 end
  redis.call('DEL', p)
  redis.call('HSET', s, 'recon', token, 'reconAt', tostring(now))
  return 1
end
if not mine then return {} end
-- Expired holds stop counting, as in an admission (they are not drift).
local expired = redis.call('ZRANGEBYSCORE', z, '-inf', now)
for _, member in ipairs(expired) do
  local amount = redis.call('HGET', a, member)
  if amount then
    redis.call('HDEL', a, member)
    if amount ~= '0' then redis.call('HINCRBY', s, 'held', '-' .. amount) end
  end
end
if #expired > 0 then redis.call('ZREMRANGEBYSCORE', z, '-inf', now) end
local oldCommitted = redis.call('HGET', s, 'committed') or '0'
local oldHeld = redis.call('HGET', s, 'held') or '0'

local seen = {}
local nSeen = tonumber(ARGV[4])
for i = 5, 4 + nSeen do seen[ARGV[i]] = true end
-- PostgreSQL's live holds.
local want = {}
for i = 5 + nSeen, #ARGV, 3 do
  if tonumber(ARGV[i + 2]) > now then want[ARGV[i]] = {ARGV[i + 1], ARGV[i + 2]} end
end
if ARGV[1] == 'check' then
  -- Sums in Redis integers (Lua numbers are doubles), in a scratch field.
  redis.call('HSET', s, 'check', ARGV[2])
  local pending = redis.call('HGETALL', p)
  for i = 1, #pending, 2 do
    if not seen[pending[i]] then redis.call('HINCRBY', s, 'check', pending[i + 1]) end
  end
  local same = redis.call('HGET', s, 'check') == oldCommitted
  redis.call('HSET', s, 'check', '0')
  local n = 0
  for member, hold in pairs(want) do
    n = n + 1
    if redis.call('HGET', a, member) ~= hold[1] or tonumber(redis.call('ZSCORE', z, member)) ~= tonumber(hold[2]) then same = false end
    redis.call('HINCRBY', s, 'check', hold[1])
  end
  same = same and redis.call('HGET', s, 'check') == oldHeld and redis.call('HLEN', a) == n and redis.call('ZCARD', z) == n
  redis.call('HDEL', s, 'check')
  if not same then return 'differs' end
  redis.call('DEL', p)
  redis.call('HDEL', s, 'recon', 'reconAt')
  return 'equal'
end
redis.call('HSET', s, 'committed', ARGV[2])
local pending = redis.call('HGETALL', p)
local settled = {}
for i = 1, #pending, 2 do
  settled[pending[i]] = true
  if not seen[pending[i]] then redis.call('HINCRBY', s, 'committed', pending[i + 1]) end
end
for i = 5, 4 + nSeen do
  if not settled[ARGV[i]] then redis.call('SADD', seenKey, ARGV[i]) end
end
if nSeen > 0 then redis.call('PEXPIRE', seenKey, 60000) end
redis.call('DEL', p)
redis.call('HDEL', s, 'recon', 'reconAt')
local newCommitted = redis.call('HGET', s, 'committed')

-- Holds: PostgreSQL's live ones.
local have = redis.call('HGETALL', a)
for i = 1, #have, 2 do
  if not want[have[i]] or want[have[i]][1] ~= have[i + 1] then
    redis.call('HDEL', a, have[i])
    redis.call('ZREM', z, have[i])
  end
end
redis.call('HSET', s, 'held', '0')
for member, hold in pairs(want) do
  redis.call('HSET', a, member, hold[1])
  redis.call('ZADD', z, hold[2], member)
  redis.call('HINCRBY', s, 'held', hold[1])
end
local newHeld = redis.call('HGET', s, 'held')
return {oldCommitted, newCommitted, oldHeld, newHeld}
