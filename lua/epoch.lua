-- epoch.lua - the namespace's epoch marker: does this Redis still hold the
-- leases sfl wrote to it? Every command connection of every sflimit process
-- runs this once, after connecting and before anything else (src/store.c).
--
-- Leases live only in Redis. A Redis that lost its data (a restart without
-- persistence, or with an AOF that missed the last second, a FLUSHALL, a
-- failover to a replica that had not caught up) no longer counts the checks
-- still running, and would give their slots again. So one marker stands for
-- the whole namespace: when it is missing, or the Redis process serving it
-- is not the one that last confirmed it, a recovery window of one lease TTL
-- opens for every account at once, in which only leases that already
-- existed are re-taken (renew.lua); acquire.lua and release.lua grant
-- nothing new in it (prelude.lua's epoch_window). An account merely new to
-- an intact Redis grants at once.
--
-- A missing marker is not made here (a command that only reads, or fails on
-- its input, leaves Redis as it was): the first script that writes a limit
-- or would grant a lease makes it, with its window (prelude.lua). Only the
-- modes below, an operator's word that no check used this Redis, make it
-- here without a window.
--
-- KEYS: 1 sfl:epoch  HASH  created_ms, opened_ms, recover_until_ms, ttl_ms,
--                          reason ("missing", "restart", "failover", "init"),
--                          run_id, replid (of the Redis that last confirmed it: a
--                          promoted replica shows that replid as master_replid2)
-- ARGV: 1 recovery window ms (the caller's lease TTL); a window opened here
--         lasts the marker's ttl_ms, the longest TTL of the processes that
--         take leases, or this when none is known
--       2 "" | "fresh": a missing marker is made without a window (a Redis no
--         check has used: `sflimit init`, `accounts set --fresh`, an embedded
--         Redis) | "init": as fresh, and a window opened because the marker
--         was missing is closed; one opened for a restart or a failover
--         (data known to be lost) is kept | "force": any open window is closed
--       3 (optional) the lease TTL of a caller that takes leases: kept in
--         ttl_ms when longer than the one there, so that a window opened by
--         a process with a shorter TTL still outlasts every lease
-- returns: {state, recovering ms, reason, created_ms, maxmemory_policy}
--          state: "missing" (none, and none made), "created" (made without a
--          window), "changed" (another Redis process: restart or failover;
--          the window is open), "closed" (init/force closed a window), "intact"
--
-- Built with prelude.lua in front (redis_now, redis_identity, make_epoch).
local now = redis_now()
local window, mode, ttl = tonumber(ARGV[1]) or 0, ARGV[2], tonumber(ARGV[3]) or 0
local e = redis.call('HMGET', KEYS[1], 'created_ms', 'recover_until_ms', 'reason', 'run_id',
                     'replid', 'ttl_ms')

-- Redis's eviction policy (INFO memory): anything but noeviction may drop a
-- lease or the marker itself under memory pressure, data lost without a sign.
local policy = string.match(redis.call('INFO', 'memory'), 'maxmemory_policy:([%w-]+)') or ''

local function answer(state, until_ms, reason, created)
    return {state, math.max(0, until_ms - now), reason, created, policy}
end

if not e[1] then
    if mode == '' then
        return answer('missing', 0, '', 0)
    end
    make_epoch(KEYS[1], now, now, 'init', ttl)
    return answer('created', now, 'init', now)
end
local run_id, replid, replid2 = redis_identity()
local created, until_ms, reason = tonumber(e[1]), tonumber(e[2]) or 0, e[3] or ''
local known_ttl = tonumber(e[6]) or 0
if ttl > known_ttl then
    redis.call('HSET', KEYS[1], 'ttl_ms', ttl)
    known_ttl = ttl
end
if known_ttl > 0 then
    window = known_ttl
end
if e[4] ~= run_id then
    -- Another process serves the data: it may lack the newest grants. A
    -- replica promoted keeps its old master's replication id as its second.
    reason = (e[4] == '' or not e[4]) and 'missing' or replid2 == e[5] and 'failover' or 'restart'
    until_ms = math.max(until_ms, now + window)
    redis.call('HSET', KEYS[1], 'opened_ms', now, 'recover_until_ms', until_ms, 'reason', reason,
               'run_id', run_id, 'replid', replid)
    if mode ~= 'force' then
        return answer('changed', until_ms, reason, created)
    end
end
if now < until_ms and (mode == 'force' or mode == 'init' and reason == 'missing') then
    redis.call('HSET', KEYS[1], 'recover_until_ms', now, 'reason', 'init')
    return answer('closed', now, reason, created)
end
return answer('intact', until_ms, reason, created)
