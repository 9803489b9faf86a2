-- renew.lua - extend a held lease; if Redis no longer has it, re-take it only
-- where its login has room.
--
-- KEYS: 1-4 the lease's login (leases, holders, conf, fence), 5-6 its
--       account's waiters and waiters:exp, as acquire.lua; the waiters are
--       only given their expiry; 7 the namespace's epoch marker (epoch.lua)
-- ARGV: 1 lease id
--       2 ttl ms
--       3 node id
--       4 stream label
--       5 max_streams the node last knew, -1 if none (restores a lost conf)
--       6 recovery window ms, opened when the conf and the epoch marker are
--         both missing (Redis lost its data)
-- returns: {1, fence, deadline_ms, in_use, limit}  renewed
--          {2, fence, deadline_ms, in_use, limit}  re-taken: the lease had gone (expired,
--                                                  or Redis lost it) and there was room;
--                                                  a new fence
--          {0, 0, in_use, limit, reason, 0, now_ms} lost: gone and no room ("full"),
--                                                  or no limit known ("unknown account",
--                                                  limit -1), or the account's keys moved
--                                                  to a group's ("moved ...", limit -1),
--                                                  or others' connections need its slot
--                                                  ("preempted": others.lua marked it);
--                                                  the shape of acquire.lua's denial
--
-- Built with prelude.lua in front.
--
-- A re-take is allowed inside a recovery window: that window exists exactly so
-- the leases of checks still running can come back before anyone new gets in.
-- A lease still live is only extended: nothing else needs reading (a slot
-- handed to a ticket and renewed before its take-over also gets the node's
-- stream label, as acquire.lua's take-over gives it).
local now = redis_now()
local id, ttl = ARGV[1], tonumber(ARGV[2])
local now_s = fmt('%d', now)

local conf = redis.call('HMGET', KEYS[3], 'max_streams', 'group', 'reserve', 'external',
                        'panel_max', 'learned_limit')
if conf[2] then
    -- Its keys moved to a group's (account.lua): this lease is counted nowhere.
    return {0, 0, 0, -1, 'moved to the keys of account ' .. conf[2], 0, now}
end
local limit = effective_limit(tonumber(conf[1]), conf[5], conf[6])
local opened = false -- when the epoch window last opened (nil: not known); false: not read
if limit == nil then
    limit = restore_conf(now, ARGV[5], 1)
    if limit == nil then
        return {0, 0, redis.call('ZCARD', KEYS[1]), -1, 'unknown account', 0, now}
    end
    -- A lost conf may be a lost Redis: the first script to run after it
    -- opens the window (this re-take is allowed in it).
    opened = select(2, epoch_window(now, ARGV[6]))
end

local status, fence, fresh = 1, nil, false
local current = tonumber(redis.call('ZSCORE', KEYS[1], id))
if current and current > now then
    local holder = cjson.decode(redis.call('HGET', KEYS[2], id) or '{}')
    if holder.preempted then
        -- Others' connections need its slot (others.lua): it stays counted
        -- until its node, told so here, stops the check and gives it back.
        return {0, 0, redis.call('ZCARD', KEYS[1]), limit, 'preempted', 0, now}
    end
    fence = holder.fence or 0
    if holder.stream == '' then
        -- A slot handed to this ticket (release.lua), renewed before its
        -- take-over (limiter.c sends that late): the holder gets its label.
        redis.call('HSET', KEYS[2], id, holder_json(ARGV[3], ARGV[4], now, fence))
    end
else
    reap_leases(now_s, 1)
    local held = redis.call('ZCARD', KEYS[1]) + (tonumber(conf[3]) or 0) + (tonumber(conf[4]) or 0)
    if limit > 0 and held >= limit then
        return {0, 0, held, limit, 'full', 0, now}
    end
    status = 2
    if opened == false then
        -- When the window last opened: a re-take's token goes above the
        -- ones a Redis that lost writes may have lost (next_fence).
        opened = select(2, epoch_window(now, nil))
    end
    fence, fresh = next_fence(now, 1, opened)
    redis.call('HSET', KEYS[2], id, holder_json(ARGV[3], ARGV[4], now, fence))
end
local deadline = now + ttl
redis.call('ZADD', KEYS[1], fmt('%d', deadline), id)
local in_use = redis.call('ZCOUNT', KEYS[1], '(' .. now_s, '+inf')
keep_keys(now, deadline, KEYS[1], fresh, 1, 5)
return {status, fence, deadline, in_use, limit}
