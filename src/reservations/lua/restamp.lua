-- Stamps a newer generation on a loaded budget window whose counters stay as they are (see
-- ReservationLoader.restamp: its fence moved without a rebuild or repair stamping it). Never on a
-- window that is not loaded, never backwards.
-- KEYS[1] the window's state hash   ARGV[1] generation
if redis.call('HGET', KEYS[1], 'loaded') ~= '1' then return 0 end
if tonumber(ARGV[1]) <= tonumber(redis.call('HGET', KEYS[1], 'gen') or '0') then return 0 end
redis.call('HSET', KEYS[1], 'gen', ARGV[1])
return 1
