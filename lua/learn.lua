-- learn.lua - what a login's provider taught about its real limit: its
-- refusals, the checks that went through, its panel's max_connections. The
-- login's effective limit (prelude's effective_limit: max_streams capped by
-- panel_max and learned_limit) is what acquire.lua, renew.lua and
-- release.lua grant by; this script is the only writer of what caps it.
--
-- KEYS: 1 the login's conf    HASH  max_streams, external (others.lua), and here:
--                                   learned_limit       the learned cap (absent: none)
--                                   learned_window_ms   a second refusal before this
--                                                       halves it again
--                                   learned_quiet_ms    no climb before this
--                                   learned_probe       1: the last climb awaits its proof
--                                   learned_reason      the last change, for status readers
--                                   learned_at_ms       ... and when
--                                   panel_max, panel_exp_date, panel_status, panel_at_ms
--       2 the login's leases  ZSET  (read: the checks holding it now)
-- ARGV: 1 event:
--         "refused" a check was refused (its lease still held): 2 window ms,
--                   3 quiet ms, 4 the HTTP code, or "redirect" (a short clip)
--         "ok"      a check ended OK (its lease still held): 2 window ms, 3 quiet ms
--         "panel"   the panel's answer: 2 max_connections (-1: not said), 3 exp_date
--                   ("" for none), 4 status ("" for none)
--         "reset"   forget what was learned (accounts set)
-- returns: {changed (1 when the effective limit moved, else 0), effective before,
--           effective after, reason}; effective -1 when the login has no conf,
--           0 = unlimited
--
-- The rules (issue #15):
--   - A refusal that others' connections may explain (others.lua's external
--     figure is above 0: a viewer may have taken the slot since the last
--     poll) lowers nothing.
--   - Otherwise the limit drops to max(1, holders at the refusal - 1), the
--     refused check counted among the holders; a second refusal before the
--     window ends halves it again. Either way the quiet period restarts.
--   - After the quiet period, the next check that ends OK raises the limit
--     one step; that step must be proven by a check ending OK while the
--     login holds as many leases as the new limit before the next step
--     (the quiet period is not waited again). Back at max_streams (or the
--     panel's cap), the learned cap is dropped.
--   - Never above max_streams: effective_limit takes the minimum.
--
-- Built with prelude.lua in front. Time comes only from TIME.
local now = redis_now()
local event = ARGV[1]
local FIELDS = {'learned_limit', 'learned_window_ms', 'learned_quiet_ms', 'learned_probe'}
local c = redis.call('HMGET', KEYS[1], 'max_streams', 'panel_max', 'learned_limit',
                     'learned_window_ms', 'learned_quiet_ms', 'learned_probe', 'external')
local max = tonumber(c[1])
local learned = tonumber(c[3])
local before = effective_limit(max, c[2], c[3]) or -1

local function done(after, reason)
    if after ~= before then
        redis.call('HSET', KEYS[1], 'learned_reason', reason, 'learned_at_ms', now)
    end
    return {after ~= before and 1 or 0, before, after, reason}
end

if event == 'reset' then
    redis.call('HDEL', KEYS[1], unpack(FIELDS))
    redis.call('HDEL', KEYS[1], 'learned_reason', 'learned_at_ms')
    local after = effective_limit(max, c[2], nil) or -1
    return {after ~= before and 1 or 0, before, after, 'accounts set: what was learned is forgotten'}
end

if event == 'panel' then
    local pm = tonumber(ARGV[2]) or -1
    if pm >= 0 then
        redis.call('HSET', KEYS[1], 'panel_max', pm)
    else
        redis.call('HDEL', KEYS[1], 'panel_max')
    end
    redis.call('HSET', KEYS[1], 'panel_exp_date', ARGV[3], 'panel_status', ARGV[4], 'panel_at_ms',
               now)
    local after = effective_limit(max, pm >= 0 and pm or nil, c[3]) or -1
    local cap = effective_limit(max, pm >= 0 and pm or nil, nil) or 0
    if learned and cap > 0 and learned >= cap then
        -- The panel's cap is as low as what was learned: nothing left to learn.
        redis.call('HDEL', KEYS[1], unpack(FIELDS))
    end
    if after == before then
        return {0, before, after, ''} -- every poll: nothing to log
    end
    return done(after, fmt('the panel says max_connections %d', pm))
end

if max == nil then
    return {0, -1, -1, 'no conf'}
end
local holders = redis.call('ZCOUNT', KEYS[2], '(' .. fmt('%d', now), '+inf')
local window, quiet = tonumber(ARGV[2]) or 60000, tonumber(ARGV[3]) or 300000

if event == 'refused' then
    local how = tonumber(ARGV[4]) and 'HTTP ' .. ARGV[4] or ARGV[4] -- or "redirect"
    local external = tonumber(c[7]) or 0
    if external > 0 then
        return {0, before, before,
                fmt('%s with %d held and %d others: others explain it', how, holders, external)}
    end
    local to, reason
    if learned and now < (tonumber(c[4]) or 0) then
        to = math.max(1, math.floor(before / 2))
        reason = fmt('refused again (%s) within the window: halved', how)
    else
        to = math.max(1, holders - 1)
        reason = fmt('refused (%s) with %d held', how, holders)
    end
    if before > 0 and to > before then
        to = before
    end
    redis.call('HSET', KEYS[1], 'learned_limit', to, 'learned_window_ms', now + window,
               'learned_quiet_ms', now + quiet)
    redis.call('HDEL', KEYS[1], 'learned_probe')
    return done(effective_limit(max, c[2], to), reason)
end

if event == 'ok' then
    if not learned then
        return {0, before, before, ''}
    end
    if c[6] then
        if holders >= learned then
            redis.call('HDEL', KEYS[1], 'learned_probe')
            redis.call('HSET', KEYS[1], 'learned_reason',
                       fmt('a check at %d went through: the step is proven', learned),
                       'learned_at_ms', now)
            return {0, before, before, fmt('step to %d proven', learned)}
        end
        return {0, before, before, ''}
    end
    if now < (tonumber(c[5]) or 0) then
        return {0, before, before, ''}
    end
    local to = learned + 1
    local cap = effective_limit(max, c[2], nil)
    if cap > 0 and to >= cap then
        redis.call('HDEL', KEYS[1], unpack(FIELDS))
        return done(cap, fmt('no refusal for %d s: back to %d', math.floor(quiet / 1000), cap))
    end
    redis.call('HSET', KEYS[1], 'learned_limit', to, 'learned_probe', 1)
    return done(effective_limit(max, c[2], to),
                fmt('no refusal for %d s: one step up, to be proven', math.floor(quiet / 1000)))
end

return redis.error_reply('learn.lua: unknown event ' .. tostring(event))
