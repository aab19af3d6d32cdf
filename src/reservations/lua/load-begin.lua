-- Step 1 of rebuilding budget windows from PostgreSQL: from now on, spend settled into a window
-- that is not loaded is kept aside per record (the `pending` hash) instead of being dropped. Run
-- before PostgreSQL is read, so no record can fall between the read and the load.
-- KEYS: (state hash, pending hash) pairs. ARGV: when each window's keys expire (ms).
for i = 1, #KEYS, 2 do
  local s = KEYS[i]
  if redis.call('HGET', s, 'loaded') ~= '1' then
    redis.call('HSET', s, 'loading', '1')
    redis.call('PEXPIREAT', s, ARGV[(i + 1) / 2])
  end
end
return #KEYS / 2
