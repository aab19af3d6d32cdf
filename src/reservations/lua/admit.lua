-- One atomic admission across every applicable budget of a reservation (SPEC §4.1).
--
-- KEYS[1]            idempotency key of (api key, request id)
-- KEYS[1+3i-2 .. ]   per budget i: state hash (loaded, committed, held), holds by expiry (zset), hold amounts (hash)
-- ARGV[1] reservation id   ARGV[2] ttl ms   ARGV[3] input tokens   ARGV[4] max output   ARGV[5] min output
-- ARGV[6] idempotency ttl ms   ARGV[7] number of budgets
-- ARGV[8+7(i-1) ..] per budget: kind ('tokens' | 'cost' | 'unpriced'), block limit, q1, r1, qo, ro, keys expire at (ms)
--   For a cost budget the price of (input, g output tokens) in nano-units is
--   q1 + g*qo + floor((r1 + g*ro + 500000) / 1e6), where input*input_price = q1*1e6 + r1 and
--   output_price = qo*1e6 + ro (prices per million tokens): SPEC §3.1's round-half-up, exactly.
--
-- Integers only. Lua numbers are doubles: every amount compared here is exact below 2^53, and the
-- caller clamps block limits to 2^53 - 1 (a stricter cap, never a looser one). Sums above 2^53
-- can only mean "over the limit", which rounding preserves (it is monotone). Counters themselves
-- change only through HINCRBY (exact 64-bit integers in Redis).
--
-- Returns {'dup', reservation id} | {'unloaded', i, ...} |
--   {'decided', 'held'|'denied', granted, expires at ms, now ms, then per budget: committed, held, amount, reason,
--    generation (of the window's counters: the fence value the rebuild that loaded them set, '0' if none)}
-- A request id already taken by this same reservation id is not a duplicate: an admission whose
-- row was not stored (a fence moved) removed its holds and decides again under its own id.

-- Redis before 5 needs this to write after TIME; later versions always replicate effects.
if redis.replicate_commands then redis.replicate_commands() end

local existing = redis.call('GET', KEYS[1])
if existing and existing ~= ARGV[1] then return {'dup', existing} end

local n = tonumber(ARGV[7])
local unloaded = {'unloaded'}
for i = 1, n do
  if redis.call('HGET', KEYS[3 * i - 1], 'loaded') ~= '1' then unloaded[#unloaded + 1] = i end
end
if #unloaded > 1 then return unloaded end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = ARGV[1]
local input = tonumber(ARGV[3])
local maxOut = tonumber(ARGV[4])
local minOut = tonumber(ARGV[5])

local function fmt(x) return string.format('%.0f', x) end
local function divfloor(x, d)
  local q = math.floor(x / d)
  if q * d > x then q = q - 1 elseif (q + 1) * d <= x then q = q + 1 end
  return q
end

local budgets = {}
local granted = maxOut
local denied = false
for i = 1, n do
  local s, z, a = KEYS[3 * i - 1], KEYS[3 * i], KEYS[3 * i + 1]
  local base = 8 + 7 * (i - 1)
  local b = { s = s, z = z, a = a, kind = ARGV[base], block = tonumber(ARGV[base + 1]),
    q1 = tonumber(ARGV[base + 2]), r1 = tonumber(ARGV[base + 3]), qo = tonumber(ARGV[base + 4]), ro = tonumber(ARGV[base + 5]),
    expireAt = ARGV[base + 6], reason = '' }
  -- Expired holds stop counting: drop them (no sweeper needed).
  local expired = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  for _, member in ipairs(expired) do
    local amount = redis.call('HGET', a, member)
    if amount then
      redis.call('HDEL', a, member)
      if amount ~= '0' then redis.call('HINCRBY', s, 'held', '-' .. amount) end
    end
  end
  if #expired > 0 then redis.call('ZREMRANGEBYSCORE', z, '-inf', now) end
  b.committed = redis.call('HGET', s, 'committed') or '0'
  b.held = redis.call('HGET', s, 'held') or '0'
  local avail = b.block - tonumber(b.committed) - tonumber(b.held)
  local fit = -1
  if b.kind == 'unpriced' then
    b.reason = 'unpriced_model'
  elseif avail <= 0 then
    b.reason = 'budget_exhausted'
  elseif b.kind == 'tokens' then
    fit = avail - input
  else
    local function cost(g) return b.q1 + g * b.qo + divfloor(b.r1 + g * b.ro + 500000, 1000000) end
    b.cost = cost
    if cost(0) <= avail then
      local lo, hi = 0, maxOut
      while lo < hi do
        local mid = math.floor((lo + hi + 1) / 2)
        if cost(mid) <= avail then lo = mid else hi = mid - 1 end
      end
      fit = lo
    end
  end
  if b.reason == '' and fit < minOut then b.reason = 'insufficient_budget' end
  if b.reason ~= '' then denied = true elseif fit < granted then granted = fit end
  budgets[i] = b
end

local status = 'held'
local expiresAt = now + tonumber(ARGV[2])
if denied then
  status = 'denied'
  granted = 0
  expiresAt = 0
end
local out = {'decided', status, fmt(granted), fmt(expiresAt), fmt(now)}
for i = 1, n do
  local b = budgets[i]
  local amount = '0'
  if not denied then
    if b.kind == 'tokens' then amount = fmt(input + granted) else amount = fmt(b.cost(granted)) end
    b.held = tostring(redis.call('HINCRBY', b.s, 'held', amount))
    redis.call('ZADD', b.z, expiresAt, id)
    redis.call('HSET', b.a, id, amount)
    redis.call('PEXPIREAT', b.z, b.expireAt)
    redis.call('PEXPIREAT', b.a, b.expireAt)
  end
  out[#out + 1] = b.committed
  out[#out + 1] = b.held
  out[#out + 1] = amount
  out[#out + 1] = b.reason
  out[#out + 1] = redis.call('HGET', b.s, 'gen') or '0'
end
redis.call('SET', KEYS[1], id, 'PX', ARGV[6])
return out
