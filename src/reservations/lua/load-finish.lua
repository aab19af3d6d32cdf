-- Step 2 of a rebuild: loads one budget window from what PostgreSQL holds (unless another process
-- loaded it meanwhile). committed = the records' spend read after step 1 + what settled since.
-- KEYS: state, holds zset, amounts hash.
-- ARGV: committed (decimal string), keys expire at (ms), then (reservation id, amount, expires at ms) per live hold.
local s, z, a = KEYS[1], KEYS[2], KEYS[3]
if redis.call('HGET', s, 'loaded') == '1' then return 0 end
local pending = redis.call('HGET', s, 'pending') or '0'
redis.call('DEL', z, a)
redis.call('HSET', s, 'committed', ARGV[1], 'held', '0')
redis.call('HINCRBY', s, 'committed', pending)
for i = 3, #ARGV, 3 do
  redis.call('HSET', a, ARGV[i], ARGV[i + 1])
  redis.call('ZADD', z, ARGV[i + 2], ARGV[i])
  redis.call('HINCRBY', s, 'held', ARGV[i + 1])
end
redis.call('HDEL', s, 'pending')
redis.call('HSET', s, 'loaded', '1')
for _, k in ipairs(KEYS) do redis.call('PEXPIREAT', k, ARGV[2]) end
return 1
