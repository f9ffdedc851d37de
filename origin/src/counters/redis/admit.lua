-- One verification's rate limits and credit spend, admitted together or not at all.
--
-- This is keyway-core's `admission::admit` (limits as in `ratelimit::admit_all_if`,
-- credits as in `CreditBalance::refilled` and `credits::spend`), run inside Redis so that
-- every replica counts in one place in one round trip. Everything that needs a clock or a
-- calendar (the cell number, the time left in it, the refill moment) is computed by the
-- caller in Rust; this script only moves state. `cluster_script` tests it against the core
-- on generated inputs.
--
-- KEYS: one hash per limit {c, cur, prev}; then, with credits, the balance hash
--       {r, t, v} and the set of balances not yet written to the database.
-- ARGV: n, has_credit, then per limit: cell, duration, limit, cost, left;
--       then with credits: cost, refill_moment ('' for none), refill_amount,
--       seed_r, seed_t ('' when not seeding), key_id.
-- Returns {'seed'} when the balance is not in Redis and no seed was given, changing
-- nothing; otherwise {limits_passed, credit (0 none, 1 spent, 2 exceeded),
-- credit_remaining, then per limit: admitted, remaining, reset}.
--
-- Counts are Lua numbers (doubles): exact below 2^53, which no real window or balance
-- reaches. The previous cell's weight is split so that it stays exact for windows up to
-- about a day whatever the count.

local function int(x)
  return string.format('%d', x)
end

local n = tonumber(ARGV[1])
local has_credit = ARGV[2] == '1'
local cbase = 2 + n * 5

local ckey, cdirty, r, t, v
if has_credit then
  ckey = KEYS[n + 1]
  cdirty = KEYS[n + 2]
  local h = redis.call('HMGET', ckey, 'r', 't', 'v')
  if h[1] then
    r, t, v = tonumber(h[1]), tonumber(h[2]), tonumber(h[3]) or 0
  elseif ARGV[cbase + 4] ~= '' then
    r, t, v = tonumber(ARGV[cbase + 4]), tonumber(ARGV[cbase + 5]), 0
  else
    return {'seed'}
  end
end

local states = {}
local passed = true
for i = 1, n do
  local b = 2 + (i - 1) * 5
  local cell = tonumber(ARGV[b + 1])
  local d = tonumber(ARGV[b + 2])
  local limit = tonumber(ARGV[b + 3])
  local cost = tonumber(ARGV[b + 4])
  local left = tonumber(ARGV[b + 5])
  local h = redis.call('HMGET', KEYS[i], 'c', 'cur', 'prev')
  local sc = tonumber(h[1]) or 0
  local cur = tonumber(h[2]) or 0
  local prev = tonumber(h[3]) or 0
  -- Roll to the current cell; a cell from the future (a clock that stepped back) stays.
  if cell == sc + 1 then
    prev, cur, sc = cur, 0, cell
  elseif cell > sc then
    prev, cur, sc = 0, 0, cell
  end
  if sc ~= cell then
    left = d
  end
  local weighted = math.floor(prev / d) * left + math.floor((prev % d) * left / d)
  local used = cur + weighted
  local s = {sc = sc, cur = cur, prev = prev, d = d, limit = limit, cost = cost,
             reset = (sc + 1) * d}
  if used + cost > limit then
    s.admitted = 0
    s.remaining = math.max(limit - used, 0)
    passed = false
  else
    s.admitted = 1
    s.remaining = limit - used - cost
  end
  states[i] = s
end

local credit, changed = 0, false
local counted = passed
if has_credit and passed then
  local moment = ARGV[cbase + 2]
  if moment ~= '' and tonumber(moment) > t then
    r, t, changed = tonumber(ARGV[cbase + 3]), tonumber(moment), true
  end
  local cost = tonumber(ARGV[cbase + 1])
  if r >= cost then
    r = r - cost
    credit = 1
    changed = changed or cost > 0
  else
    credit = 2
    counted = false
  end
end

local out = {passed and 1 or 0, credit, r or 0}
for i = 1, n do
  local s = states[i]
  if counted then
    s.cur = s.cur + s.cost
  elseif s.admitted == 1 then
    s.remaining = math.min(s.remaining + s.cost, s.limit)
  end
  redis.call('HSET', KEYS[i], 'c', int(s.sc), 'cur', int(s.cur), 'prev', int(s.prev))
  -- Two cells on, a window reads as empty whatever it held.
  redis.call('PEXPIRE', KEYS[i], int(math.min(2 * s.d + 1000, 9007199254740991)))
  out[#out + 1] = s.admitted
  out[#out + 1] = s.remaining
  out[#out + 1] = s.reset
end

if changed or (has_credit and v == 0) then
  redis.call('HSET', ckey, 'r', int(r), 't', int(t), 'v', int(v + 1))
  -- A balance unused for 30 days leaves Redis (the database has had it written long
  -- since); the next spend seeds it again from there.
  redis.call('PEXPIRE', ckey, 2592000000)
  redis.call('SADD', cdirty, ARGV[cbase + 6])
end
return out
