-- Step 2 of a rebuild: loads one budget window from what PostgreSQL holds (unless another process
-- loaded it meanwhile).
--   committed = the records' spend PostgreSQL showed (read after step 1)
--             + the records settled since step 1 that this read did not show.
--   holds     = PostgreSQL's live holds, but those removed since step 1.
-- The records the read showed that may still be settled (recently stored) are kept in `seen` for a
-- minute: their settle must not count them again.
-- KEYS: state, holds zset, amounts hash, pending hash, removed-while-loading set, seen set.
-- ARGV: committed (decimal string), keys expire at (ms), generation (the budget's fence value the
--   rebuild set: admissions report it, and a row is stored only while it is still the fence's),
--   the token step 1 gave this window, number of records the read showed, their ids, then
--   (reservation id, amount, expires at ms) per live hold.
local s, z, a, p, r, seenKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
-- The generation only moves forward: a slower rebuild of an older generation never stamps over a newer one.
local function stamp()
  if tonumber(ARGV[3]) > tonumber(redis.call('HGET', s, 'gen') or '0') then redis.call('HSET', s, 'gen', ARGV[3]) end
end
if redis.call('HGET', s, 'loaded') == '1' then
  -- Loaded by another rebuild meanwhile: its counters stay, under this rebuild's generation (the
  -- fence moved, so rows that granted from them before now decide again).
  stamp()
  return 0
end
-- Lost again since step 1 (another FLUSHDB, maybe a new step 1 since): this read may be older than
-- what was granted in between; leave the window to the run that holds its token now.
if redis.call('HGET', s, 'loading') ~= ARGV[4] then return 0 end
local seen = {}
local nSeen = tonumber(ARGV[5])
for i = 6, 5 + nSeen do seen[ARGV[i]] = true end
redis.call('DEL', z, a, seenKey)
redis.call('HSET', s, 'committed', ARGV[1], 'held', '0')
stamp()
local pending = redis.call('HGETALL', p)
local settled = {}
for i = 1, #pending, 2 do
  settled[pending[i]] = true
  if not seen[pending[i]] then redis.call('HINCRBY', s, 'committed', pending[i + 1]) end
end
for i = 6, 5 + nSeen do
  if not settled[ARGV[i]] then redis.call('SADD', seenKey, ARGV[i]) end
end
redis.call('PEXPIRE', seenKey, 60000)
for i = 6 + nSeen, #ARGV, 3 do
  if redis.call('SISMEMBER', r, ARGV[i]) == 0 then
    redis.call('HSET', a, ARGV[i], ARGV[i + 1])
    redis.call('ZADD', z, ARGV[i + 2], ARGV[i])
    redis.call('HINCRBY', s, 'held', ARGV[i + 1])
  end
end
redis.call('DEL', p, r)
redis.call('HDEL', s, 'loading')
redis.call('HSET', s, 'loaded', '1')
for _, k in ipairs({s, z, a}) do redis.call('PEXPIREAT', k, ARGV[2]) end
return 1
