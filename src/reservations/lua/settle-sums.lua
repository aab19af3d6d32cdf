-- The fast path of settle.lua for additions without removals: adds each window's exact sum of
-- new records in one HINCRBY where settle.lua would add each record to `committed` and note
-- nothing else (the window is loaded, no rebuild marked records in `seen`, no reconciler
-- compares it). A window nobody has loaded or is loading is skipped, as settle.lua would skip it:
-- the records are committed in PostgreSQL before they are settled, so the rebuild that loads the
-- window later reads them there. The other windows (being rebuilt, or compared by the
-- reconciler, or with `seen` records) are left untouched and their indexes returned: the caller
-- settles them with settle.lua, record by record. Each window is settled once, either way.
--
-- KEYS: (state, seen set) pairs, one per window. ARGV: the sum of each window.

local deferred = {}
for j = 1, #ARGV do
  local s, seen = KEYS[2 * j - 1], KEYS[2 * j]
  local state = redis.call('HMGET', s, 'loaded', 'loading', 'recon')
  if state[1] == '1' then
    if not state[3] and redis.call('EXISTS', seen) == 0 then
      redis.call('HINCRBY', s, 'committed', ARGV[j])
    else
      deferred[#deferred + 1] = j
    end
  elseif state[2] then
    deferred[#deferred + 1] = j
  end
end
return deferred
