-- acquire.lua - take one slot of one of an account's logins (the first with
-- room, in route order), or queue for one.
--
-- KEYS: 1 sfl:{a:<id>}:leases       ZSET  lease id -> deadline (ms, Redis server time)
--       2 sfl:{a:<id>}:holders      HASH  lease id -> {"node","stream","since_ms","fence"}
--       3 sfl:{a:<id>}:conf         HASH  max_streams, name, updated_ms, ...
--       4 sfl:{a:<id>}:fence        STRING grant counter (fencing token)
--       5 sfl:{a:<id>}:waiters      ZSET  ticket -> arrival (ms, to the us), served in that order
--       6 sfl:{a:<id>}:waiters:exp  ZSET  ticket -> expiry (ms); refreshed by every ask
--       1-4 are the account's first login; an account of several logins adds
--       4 keys per further login in route order (leases, holders, conf, fence
--       of login 2 at 7-10, ...). src/routes.h names them.
--       last: sfl:epoch                  HASH  the namespace's epoch marker (epoch.lua)
-- ARGV: 1 lease id = the node's ticket while it waits (asking again with the same id
--         is idempotent, and takes over a slot handed to this ticket)
--       2 ttl ms
--       3 node id
--       4 stream label (never a URL)
--       5 max_streams the node last knew, -1 if none: restores conf if Redis lost it
--       6 recovery window ms, opened when the epoch marker is missing
--       7 ticket ttl ms: a denied ask queues its id as a ticket for this long,
--         and at least TICKET_MIN_MS (prelude.lua: 1 s) (0: do not queue)
--       8 channel for hand-off announcements (sfl:released; each goes to
--         sfl:released:<node of the ticket>, as "<account> <ticket> <deadline_ms>
--         <fence>": see release.lua)
--       9 account id
--      10 hand-off ms (optional, default 250): how long a slot handed to a
--         ticket is held for its node to take it over
--      11, 12 ... with several logins: login k's id at 9+2k (for hand-off
--         announcements) and the max_streams the node last knew for it at
--         10+2k (login 1's is ARGV 5)
-- returns: {1, fence, deadline_ms, in_use, limit, k}             granted (or taken over)
--                                                  on login k (1 = the first); in_use
--                                                  and limit are that login's
--          {0, retry_ms, in_use, limit, "full"|"recovering", position, now_ms}  denied;
--                                                  in_use and limit summed over the
--                                                  logins (limit 0 if one is unlimited);
--                                                  position is the ticket's place (1 = next),
--                                                  now_ms the Redis time of the answer
--          {-1, "unknown account"}                           no conf and no limit known
--          {-1, "moved to the keys of account <G>"}          KEYS 3 is an account's own conf
--                                                  whose logins live under G's keys
--                                                  (account.lua): the caller's route is old
--
-- Fairness: while tickets wait, a free slot goes to the oldest live ticket
-- of the account (its lease is made here or in release.lua), never to
-- whoever asks first.
-- Time comes only from TIME. Expired leases are reaped before anything is
-- counted; an expired ticket is never given a free slot (pop_live_ticket).
--
-- Cost: this runs for every ask, so the common paths touch as little as
-- they can: a denied ask (the account is full) reads the leases and conf and
-- queues its ticket; a take-over reads the leases, conf and its holder entry
-- and rewrites them. Key expiry is pushed out only when a key is new or its
-- TTL would fall short (keep_keys), not on every call.
--
-- The epoch marker is read only when a slot would be given (a take-over or
-- a full login needs no window): inside the recovery window nothing new is
-- granted, on any login of any account.
--
-- Built with prelude.lua in front (redis_now, restore_conf, epoch_window,
-- next_fence, holder_json, keep_keys, reap_leases, pop_live_ticket,
-- hand_off).
local FETCH = 8 -- leases read in one call; a login with more is counted instead

local now, t = redis_now()
local id, ttl, ticket_ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[7])
local handoff = tonumber(ARGV[10]) or 250
local now_s = fmt('%d', now)
local W = 5                   -- the account's tickets
local n = (#KEYS - 3) / 4     -- its logins (the last key is the epoch)

local function base(k)
    return k == 1 and 1 or 4 * k - 1
end

-- in_use, the earliest deadline, and this id's deadline (nil if not a lease)
-- of the login at b.
local function read_leases(b)
    local r = redis.call('ZRANGE', KEYS[b], 0, FETCH - 1, 'WITHSCORES')
    local c, cur = #r / 2, nil
    if c < FETCH then
        for i = 1, #r, 2 do
            if r[i] == id then
                cur = tonumber(r[i + 1])
            end
        end
    else
        c = redis.call('ZCARD', KEYS[b])
        cur = tonumber(redis.call('ZSCORE', KEYS[b], id))
    end
    return c, tonumber(r[2]), cur
end

-- Every login's count and limit; a lease of this id (a lost answer, or a
-- slot handed to this ticket) is taken over with this node's ttl and label.
local L = {}
for k = 1, n do
    local b = base(k)
    local in_use, first, current = read_leases(b)
    if first and first <= now then
        reap_leases(now_s, b)
        in_use, first, current = read_leases(b)
    end
    local conf = redis.call('HMGET', KEYS[b + 2], 'max_streams', 'group', 'reserve', 'external',
                            'external_at_ms', 'max_age_ms', 'panel_max', 'learned_limit')
    if conf[2] then
        -- The account's keys are another account's group's now (account.lua):
        -- this node takes it for a lone login. Never count it here.
        return {-1, 'moved to the keys of account ' .. conf[2]}
    end
    local limit = effective_limit(tonumber(conf[1]), conf[7], conf[8])
    if limit == nil then
        -- No conf: restore the limit the node knew. A new account grants at
        -- once; if Redis lost its data, the epoch went with it (room()).
        limit = restore_conf(now, k == 1 and ARGV[5] or ARGV[10 + 2 * k], b)
        if limit == nil then
            return {-1, 'unknown account'}
        end
    end
    if current then
        local holder = cjson.decode(redis.call('HGET', KEYS[b + 1], id) or '{"fence":0}')
        local fence = holder.fence or 0
        if holder.stream == '' or holder.stream == nil then
            redis.call('HSET', KEYS[b + 1], id, holder_json(ARGV[3], ARGV[4], now, fence))
        end
        local deadline = now + ttl
        redis.call('ZADD', KEYS[b], fmt('%d', deadline), id)
        keep_keys(now, deadline, KEYS[b], false, b, W)
        return {1, fence, deadline, in_use + (tonumber(conf[3]) or 0), limit, k}
    end
    -- Slots kept for connections sfl cannot see, and the connections others
    -- hold (others.lua), count as taken. A login whose others' figure comes
    -- from a source and is older than max_age_ms grants nothing: no slot
    -- rather than a guess of zero viewers.
    local max_age = tonumber(conf[6]) or 0
    local stale = max_age > 0 and now - (tonumber(conf[5]) or 0) > max_age
    L[k] = {b = b, in_use = in_use + (tonumber(conf[3]) or 0) + (tonumber(conf[4]) or 0),
            first = first, limit = limit, stale = stale}
end

-- The first login with a free slot, or nil; none inside the recovery window.
local recover_until, opened = nil, nil -- read once, when a slot would be given
local function room()
    for k = 1, n do
        local l = L[k]
        if not l.stale and (l.limit == 0 or l.in_use < l.limit) then
            if not recover_until then
                recover_until, opened = epoch_window(now, ARGV[6])
            end
            if now < recover_until then
                return nil
            end
            return k
        end
    end
    return nil
end

local granted = room()
local last = 0 -- the latest hand-off deadline written below, 0 if none
if granted then
    -- A slot is free. It goes to the oldest live ticket (this ask may be it).
    while granted do
        local head = pop_live_ticket(now, now_s, W)
        if not head or head == id then
            break -- none queued, or this ask is the oldest: it takes the slot below
        end
        -- A slot freed without a release (an expiry, a raised limit): the
        -- oldest ticket gets it, held for its node to take over.
        local l = L[granted]
        local deadline, fresh = hand_off(head, now, handoff, ARGV[8], ARGV[9], l.b,
                                         ARGV[9 + 2 * granted], opened)
        keep_keys(now, deadline, KEYS[l.b], fresh, l.b, W)
        last = math.max(last, deadline)
        l.in_use = l.in_use + 1
        granted = room()
    end
    -- Room left means the queue is empty now, or this id was its head: if
    -- it was queued further back, the loop went on until it came out or
    -- the room ran out.
end

if not granted then
    local in_use, limit, stale, soonest = 0, 0, true, nil
    local recovering = recover_until ~= nil and now < recover_until
    for k = 1, n do
        local l = L[k]
        in_use = in_use + l.in_use
        limit = (limit == 0 and k > 1 or l.limit == 0) and 0 or limit + l.limit
        local at = l.first
        if recovering then
            at = recover_until
        elseif l.stale then
            at = now + 250 -- a fresh figure may come any time
        else
            stale = false
        end
        if at and (not soonest or at < soonest) then
            soonest = at
        end
    end
    if last > 0 and (not soonest or last < soonest) then
        soonest = last
    end
    local retry = soonest and math.max(1, soonest - now) or 1
    local position = 0
    if ticket_ttl > 0 then
        ticket_ttl = math.max(ticket_ttl, TICKET_MIN_MS)
        -- Arrival in ms to the microsecond: tickets of one millisecond are
        -- served in the order they came, not in the order of their names.
        local us = tonumber(t[2])
        redis.call('ZADD', KEYS[W], 'NX', fmt('%s%03d.%03d', t[1], math.floor(us / 1000), us % 1000),
                   id)
        redis.call('ZADD', KEYS[W + 1], fmt('%d', now + ticket_ttl), id)
        position = redis.call('ZRANK', KEYS[W], id) + 1
        keep_keys(now, now + ticket_ttl, KEYS[W], false, 1, W)
    end
    local reason = recovering and 'recovering' or stale and 'stale' or 'full'
    return {0, retry, in_use, limit, reason, position, now}
end

local l = L[granted]
local fence, fresh = next_fence(now, l.b, opened)
local deadline = now + ttl
redis.call('HSET', KEYS[l.b + 1], id, holder_json(ARGV[3], ARGV[4], now, fence))
redis.call('ZADD', KEYS[l.b], fmt('%d', deadline), id)
keep_keys(now, deadline, KEYS[l.b], fresh, l.b, W)
return {1, fence, deadline, l.in_use + 1, l.limit, granted}
