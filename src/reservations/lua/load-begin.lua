-- Step 1 of rebuilding budget windows from PostgreSQL: from now on, spend settled into a window
-- that is not loaded is kept aside per record (the `pending` hash) instead of being dropped. Run
-- before PostgreSQL is read, so no record can fall between the read and the load.
-- Each window not loaded gets a token (`loading`): this run's, or the one of a run already begun
-- (whose pending records are this run's too). Step 2 loads only under the token it was given, so
-- a run that began before the window was lost again (another FLUSHDB, and a new step 1) cannot
-- load its older read.
-- KEYS: (state hash, pending hash) pairs. ARGV: when each window's keys expire (ms), then this
-- run's token. Returns the token of each window ('' when it is loaded).
local token = ARGV[#ARGV]
local out = {}
for i = 1, #KEYS, 2 do
  local s = KEYS[i]
  local tok = ''
  if redis.call('HGET', s, 'loaded') ~= '1' then
    tok = redis.call('HGET', s, 'loading')
    if not tok then
      tok = token
      redis.call('HSET', s, 'loading', tok)
    end
    redis.call('PEXPIREAT', s, ARGV[(i + 1) / 2])
  end
  out[#out + 1] = tok
end
return out
