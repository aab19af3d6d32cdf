-- The fast path of settle.lua for additions without removals: adds each window's exact sum of
-- new records in one HINCRBY where settle.lua would add each record to `committed` and note
-- nothing else (the window is loaded, no rebuild marked records in `seen`, no reconciler
-- compares it). Other windows are left untouched and their indexes returned: the caller settles
-- them with settle.lua, record by record. Each window is settled once, either way.
--
-- KEYS: (state, seen set) pairs, one per window. ARGV: the sum of each window.

local deferred = {}
for j = 1, #ARGV do
  local s, seen = KEYS[2 * j - 1], KEYS[2 * j]
  if redis.call('HGET', s, 'loaded') == '1' and redis.call('HEXISTS', s, 'recon') == 0 and redis.call('EXISTS', seen) == 0 then
    redis.call('HINCRBY', s, 'committed', ARGV[j])
  else
    deferred[#deferred + 1] = j
  end
end
return deferred
