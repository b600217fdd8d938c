-- quota core: included (--@include quota_core) by quota.lua and
-- quota_refund.lua at build time (scripts/embed-lua.sh); another script
-- may include it too and call quota_check / quota_refund
--
-- The arithmetic of src/smarty_quota.c, step for step; see its header for
-- the algorithms.  Lua numbers are doubles: every value here is an integer
-- below 2^53 (counts and bursts at most 10^9, debts at most 10^12, clocks
-- in ms), and every division goes through q_idiv, which corrects the
-- rounding of a / b, so that the two implementations agree exactly.

local Q_SLACK = 60000           -- SMARTY_QUOTA_SLACK_MS
local Q_WINDOW = { s = 1000, m = 60000, h = 3600000, d = 86400000 }

-- floor(a / b), exactly, for 0 <= a < 2^53 and b > 0
local function q_idiv(a, b)
    local q = math.floor(a / b)
    while q * b > a do q = q - 1 end
    while (q + 1) * b <= a do q = q + 1 end
    return q
end

local function q_ceil(a, b)
    local q = q_idiv(a, b)
    if q * b < a then q = q + 1 end
    return q
end

-- an integer >= 0 from an argument, or an error
local function q_int(s, what)
    local n = tonumber(s)
    if n == nil or n < 0 or n ~= math.floor(n) then
        error('quota: ' .. what .. ' must be an integer >= 0, not ' ..
              tostring(s))
    end
    return n
end

-- the clock: Redis's own (TIME) unless an explicit one is given (tests)
local function q_now(arg)
    if arg == nil or arg == '' then
        local t = redis.call('TIME')
        return tonumber(t[1]) * 1000 + q_idiv(tonumber(t[2]), 1000)
    end
    return q_int(arg, 'now')
end

-- "rs:10:20": unit, window, count, burst (smarty_quota_limit_arg)
local function q_limit(spec)
    local u, w, c, b = string.match(spec, '^([ri])([smhd]):(%d+):(%d+)$')
    if u == nil then
        error('quota: a limit is <r|i><s|m|h|d>:<count>:<burst>, not ' ..
              tostring(spec))
    end
    c = tonumber(c)
    b = tonumber(b)
    if c < 1 or c > 1000000000 or b < 1 or b > 1000000000 then
        error('quota: count and burst must be 1 to 1000000000: ' .. spec)
    end
    return { unit = u, window = w, w = Q_WINDOW[w], count = c, burst = b }
end

-- the stored state "t:v", { 0, 0 } when absent (or unreadable)
local function q_load(key)
    local raw = redis.call('GET', key)
    if not raw then return 0, 0 end
    local t, v = string.match(raw, '^(%-?%d+):(%-?%d+)$')
    if t == nil then return 0, 0 end
    return tonumber(t), tonumber(v)
end

-- the state as it stands at now: t, v, te (smarty_quota_read)
local function q_read(l, t, v, now)
    if v < 0 then v = 0 end
    if l.window == 's' then
        local te = now > t and now or t
        local dt = te - t
        if v > 0 and dt >= q_ceil(v, l.count) then
            v = 0
        elseif v > 0 then
            v = v - dt * l.count
        end
        return te, v, te
    end
    local ws = q_idiv(now, l.w) * l.w
    if ws > t then
        t = ws
        v = 0
    end
    return t, v, now
end

-- room for amount? ok, retry (ms, -1 never), v after (smarty_quota_try)
local function q_try(l, t, v, te, now, amount)
    if amount == 0 then return true, 0, v end
    if l.window == 's' then
        if amount > l.burst then return false, -1, v end
        local cap = l.burst * 1000
        local cost = amount * 1000
        if v + cost <= cap then return true, 0, v + cost end
        return false, (te - now) + q_ceil(v + cost - cap, l.count), v
    end
    if amount > l.count then return false, -1, v end
    if v + amount <= l.count then return true, 0, v + amount end
    return false, t + l.w - now, v
end

-- remaining, reset (ms) (smarty_quota_measure)
local function q_measure(l, t, v, te, now)
    if l.window == 's' then
        local cap = l.burst * 1000
        local rem = 0
        if v < cap then rem = q_idiv(cap - v, 1000) end
        return rem, (te - now) + q_ceil(v, l.count)
    end
    local rem = 0
    if v < l.count then rem = l.count - v end
    return rem, t + l.w - now
end

-- write a state; it expires SMARTY_QUOTA_SLACK_MS after it stops mattering
-- (the debt drained, the window over): an absent key reads as fresh
local function q_store(key, l, t, v, te, now)
    local ttl
    if l.window == 's' then
        ttl = (te - now) + q_ceil(v, l.count) + Q_SLACK
    else
        ttl = t + l.w - now + Q_SLACK
    end
    if ttl < 1 then ttl = 1 end
    redis.call('SET', key, string.format('%.0f:%.0f', t, v),
               'PX', string.format('%.0f', ttl))
end

-- Check and spend, all or nothing, on the n limits whose state keys are
-- keys[k0 + 1 .. k0 + n] and specs args[a0 + 1 .. a0 + n].  Returns
-- { refused (0, or the 1-based index of the limit), retry ms (0; -1
-- never), now, then remaining and reset ms of each limit }.
local function quota_check(keys, k0, args, a0, n, now, requests, images)
    local st = {}
    local refused, worst = 0, 0

    for i = 1, n do
        local l = q_limit(args[a0 + i])
        local amount = (l.unit == 'r') and requests or images
        local t, v = q_load(keys[k0 + i])
        local te
        t, v, te = q_read(l, t, v, now)
        local ok, retry, nv = q_try(l, t, v, te, now, amount)
        st[i] = { l = l, amount = amount, t = t, v = v, te = te, nv = nv }
        if not ok then
            if refused == 0 or
               (worst ~= -1 and (retry == -1 or retry > worst)) then
                refused = i
                worst = retry
            end
        end
    end

    local out = { refused, worst, now }

    for i = 1, n do
        local s = st[i]
        local v = s.v
        if refused == 0 and s.amount > 0 then
            v = s.nv
            q_store(keys[k0 + i], s.l, s.t, v, s.te, now)
        end
        local rem, reset = q_measure(s.l, s.t, v, s.te, now)
        out[#out + 1] = rem
        out[#out + 1] = reset
    end

    return out
end

-- Give back what a request spent at the clock at (quota_check's now):
-- { changed, now, then remaining and reset ms of each limit }.
local function quota_refund(keys, k0, args, a0, n, now, at, requests,
                            images)
    local changed = 0
    local out = {}

    for i = 1, n do
        local key = keys[k0 + i]
        local l = q_limit(args[a0 + i])
        local amount = (l.unit == 'r') and requests or images
        local st, v = q_load(key)
        local t, te
        t, v, te = q_read(l, st, v, now)

        if amount > 0 and v > 0 then
            if l.window == 's' then
                local back = amount * 1000
                if amount > q_idiv(v, 1000) + 1 then back = v end
                if v > back then v = v - back else v = 0 end
                q_store(key, l, t, v, te, now)
                changed = changed + 1
            elseif t == q_idiv(at, l.w) * l.w and st == t then
                if v > amount then v = v - amount else v = 0 end
                q_store(key, l, t, v, te, now)
                changed = changed + 1
            end
        end

        local rem, reset = q_measure(l, t, v, te, now)
        out[#out + 1] = rem
        out[#out + 1] = reset
    end

    table.insert(out, 1, now)
    table.insert(out, 1, changed)
    return out
end

-- quota core: end
