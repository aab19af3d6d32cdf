-- The reconciler's repair of one loaded budget window, in two calls.
-- ARGV[1] = 'begin': notes spend settled from now on (`recon`); returns 1 when the window is loaded.
-- ARGV[1] = 'finish': ARGV[2] committed read from PostgreSQL after 'begin', then (reservation id,
--   amount, expires at ms) per live hold in PostgreSQL. Sets committed = read + noted since, and
--   the holds to PostgreSQL's live ones. Returns {old committed, new committed, old held, new held},
--   or {} when the window is no longer loaded or was not begun.
-- KEYS: state, holds zset, amounts hash.
local s, z, a = KEYS[1], KEYS[2], KEYS[3]
if redis.call('HGET', s, 'loaded') ~= '1' then
  if ARGV[1] == 'begin' then return 0 end
  return {}
end
if ARGV[1] == 'begin' then
  redis.call('HSET', s, 'recon', '0')
  return 1
end
local recon = redis.call('HGET', s, 'recon')
if not recon then return {} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', z, '-inf', now)
for _, member in ipairs(expired) do
  local amount = redis.call('HGET', a, member)
  if amount then
    redis.call('HDEL', a, member)
    redis.call('HINCRBY', s, 'held', '-' .. amount)
  end
end
if #expired > 0 then redis.call('ZREMRANGEBYSCORE', z, '-inf', now) end
local oldCommitted = redis.call('HGET', s, 'committed') or '0'
local oldHeld = redis.call('HGET', s, 'held') or '0'
redis.call('HSET', s, 'committed', ARGV[2])
local newCommitted = tostring(redis.call('HINCRBY', s, 'committed', recon))
redis.call('HDEL', s, 'recon')
-- Holds: PostgreSQL's live ones (expired ones stop counting by Redis' clock, as in an admission).
local want = {}
for i = 3, #ARGV, 3 do
  if tonumber(ARGV[i + 2]) > now then want[ARGV[i]] = {ARGV[i + 1], ARGV[i + 2]} end
end
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
