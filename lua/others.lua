-- others.lua - the connections others hold on a login (viewers, other
-- devices), as a source saw them: counted by acquire.lua beside the leases.
--
-- KEYS: 1 the login's conf    HASH  gains external, external_at_ms, external_source,
--                                   max_age_ms
--       2 the login's leases  ZSET  (read: this cluster's checks on it now)
--       3 the login's holders HASH  (a lease that gives way is marked)
-- ARGV: 1 count (integer >= 0)
--       2 source ("dispatcharr", "xtream", ...; never a credential)
--       3 max_age_ms: the figure is good this long after now; acquire.lua
--         grants nothing on the login once it is older (0: it never ages)
--       4 "total" when count is every connection on the login, this
--         cluster's checks included (a panel's active_cons): the checks that
--         have held their lease at least 2 s are taken off, never below 0 (a
--         younger one may not have opened its connection when the panel
--         counted: taking it off could let one check too many in; leaving it
--         counts it twice for a poll, which only wastes a slot); "closed" when the source says the
--         login cannot be used (a panel's Expired, Banned, auth 0): the login
--         is counted full; anything else: count is others' alone
--         (Dispatcharr's proxy)
--       5 channel for preemptions (sfl:released; each goes to
--         sfl:released:<node of the lease> as "! <lease id>")
-- returns: {external, leases live now, effective limit (-1 if none), reserve,
--           lease id preempted, ...}
--
-- Viewers first: when leases + external + reserve go over the effective
-- limit (max_streams capped by the panel and by refusals: learn.lua), the
-- youngest checks (latest since_ms) give way: their holder entry is marked
-- "preempted" (renew.lua then answers their node that the lease is lost)
-- and their node is told at once. They stay counted until their node gives
-- them back, having stopped the check. Leases already marked, and slots
-- cooling down (cooldown:<id>), are not checks to stop.
--
-- Built with prelude.lua in front. The figure is written with Redis time,
-- never a node's clock.
local now = redis_now()
local count = math.max(0, math.floor(tonumber(ARGV[1]) or 0))
local live = redis.call('ZCOUNT', KEYS[2], '(' .. fmt('%d', now), '+inf')
local conf = redis.call('HMGET', KEYS[1], 'max_streams', 'reserve', 'panel_max', 'learned_limit')
-- The effective limit (prelude.lua): what the provider really allows, as
-- learn.lua knows it, is what viewers are put first within.
local limit, reserve = effective_limit(tonumber(conf[1]), conf[3], conf[4]) or -1,
                       tonumber(conf[2]) or 0
local external = count
local sure = count -- the others' connections surely there: what preemption goes by
if ARGV[4] == 'total' then
    -- For preemption every live lease is taken off: a check whose connection
    -- the panel has not counted yet must not be stopped for it.
    sure = math.max(0, count - live)
    local settled = 0
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. fmt('%d', now), '+inf')) do
        local h = cjson.decode(redis.call('HGET', KEYS[3], id) or '{}')
        if h.stream and h.stream ~= '' and (h.since_ms or now) <= now - 2000 then
            settled = settled + 1
        end
    end
    external = math.max(0, count - settled)
elseif ARGV[4] == 'closed' then
    external = math.max(limit, 1)
    sure = 0
end
redis.call('HSET', KEYS[1], 'external', external, 'external_at_ms', now, 'external_source',
           ARGV[2], 'max_age_ms', tonumber(ARGV[3]) or 0)
local out = {external, live, limit, reserve}
local over = limit > 0 and live + sure + reserve - limit or 0
if over <= 0 or ARGV[4] == 'closed' then
    return out -- a closed login's checks are not stopped: it only grants no more
end
local holders = KEYS[3]
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. fmt('%d', now), '+inf')
local running = {}
for _, id in ipairs(ids) do
    if string.sub(id, 1, 9) ~= 'cooldown:' then
        local h = cjson.decode(redis.call('HGET', holders, id) or '{}')
        if h.preempted then
            over = over - 1 -- already giving way
        elseif h.stream and h.stream ~= '' then
            running[#running + 1] = {id = id, h = h}
        end
    end
end
table.sort(running, function(a, b) return (a.h.since_ms or 0) > (b.h.since_ms or 0) end)
for i = 1, math.min(over, #running) do
    local r = running[i]
    r.h.preempted = true
    redis.call('HSET', holders, r.id, cjson.encode(r.h))
    redis.call('PUBLISH', ARGV[5] .. ':' .. (r.h.node or ''), '! ' .. r.id)
    out[#out + 1] = r.id
end
return out
