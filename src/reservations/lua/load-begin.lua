-- Step 1 of rebuilding budget windows from PostgreSQL: from now on, spend settled into a window
-- that is not loaded is kept aside (`pending`) instead of being dropped. Run before PostgreSQL
-- is read, so no record can fall between the read and the load.
-- KEYS: state hashes. ARGV: when each expires (ms).
for i, s in ipairs(KEYS) do
  if redis.call('HGET', s, 'loaded') ~= '1' then
    redis.call('HSETNX', s, 'pending', '0')
    redis.call('PEXPIREAT', s, ARGV[i])
  end
end
return #KEYS
