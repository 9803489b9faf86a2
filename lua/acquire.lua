-- acquire.lua - take one slot of an account's limit, or queue for one.
--
-- KEYS: 1 sfl:{a:<id>}:leases       ZSET  lease id -> deadline (ms, Redis server time)
--       2 sfl:{a:<id>}:holders      HASH  lease id -> {"node","stream","since_ms","fence"}
--       3 sfl:{a:<id>}:conf         HASH  max_streams, name, updated_ms, epoch_ms, recover_until_ms
--       4 sfl:{a:<id>}:fence        STRING grant counter (fencing token)
--       5 sfl:{a:<id>}:waiters      ZSET  ticket -> arrival (ms, to the us), served in that order
--       6 sfl:{a:<id>}:waiters:exp  ZSET  ticket -> expiry (ms); refreshed by every ask
-- ARGV: 1 lease id = the node's ticket while it waits (asking again with the same id
--         is idempotent, and takes over a slot handed to this ticket)
--       2 ttl ms
--       3 node id
--       4 stream label (never a URL)
--       5 max_streams the node last knew, -1 if none: restores conf if Redis lost it
--       6 recovery window ms, opened when conf has to be restored
--       7 ticket ttl ms: a denied ask queues its id as a ticket for this long
--         (0: do not queue)
--       8 channel for hand-off announcements (sfl:released; each goes to
--         sfl:released:<node of the ticket>, as "<account> <ticket> <deadline_ms>
--         <fence>": see release.lua)
--       9 account id
--      10 hand-off ms (optional, default 250): how long a slot handed to a
--         ticket is held for its node to take it over
-- returns: {1, fence, deadline_ms, in_use, limit}                granted (or taken over)
--          {0, retry_ms, in_use, limit, "full"|"recovering", position, now_ms}  denied;
--                                                  position is the ticket's place (1 = next),
--                                                  now_ms the Redis time of the answer
--          {-1, "unknown account"}                           no conf and no limit known
--
-- Fairness: while tickets wait, a free slot goes to the oldest live ticket
-- (its lease is made here or in release.lua), never to whoever asks first.
-- Time comes only from TIME. Expired leases are reaped before anything is
-- counted; expired tickets before a free slot is given to a ticket.
--
-- Cost: this runs for every ask, so the common paths touch as little as
-- they can: a denied ask (the account is full) reads the leases and conf and
-- queues its ticket; a take-over reads the leases, conf and its holder entry
-- and rewrites them. Key expiry is pushed out only when a key is new or its
-- TTL would fall short (keep_keys), not on every call.
--
-- Built with prelude.lua in front (redis_now, restore_conf, next_fence,
-- holder_json, keep_keys, reap_leases, reap_tickets, pop_ticket, hand_off).
local FETCH = 8 -- leases read in one call; an account with more is counted instead

local now, t = redis_now()
local id, ttl, ticket_ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[7])
local handoff = tonumber(ARGV[10]) or 250
local now_s = fmt('%d', now)

-- in_use, the earliest deadline, and this id's deadline (nil if not a lease).
local function read_leases()
    local r = redis.call('ZRANGE', KEYS[1], 0, FETCH - 1, 'WITHSCORES')
    local n, cur = #r / 2, nil
    if n < FETCH then
        for i = 1, #r, 2 do
            if r[i] == id then
                cur = tonumber(r[i + 1])
            end
        end
    else
        n = redis.call('ZCARD', KEYS[1])
        cur = tonumber(redis.call('ZSCORE', KEYS[1], id))
    end
    return n, tonumber(r[2]), cur
end

local in_use, first, current = read_leases()
if first and first <= now then
    reap_leases(now_s)
    in_use, first, current = read_leases()
end

local conf = redis.call('HMGET', KEYS[3], 'max_streams', 'recover_until_ms')
local limit, recover_until = tonumber(conf[1]), tonumber(conf[2]) or 0
if limit == nil then
    -- No conf: restore the limit the node knew and wait out one lease TTL,
    -- in which only leases that already existed can be re-taken (renew.lua).
    limit = restore_conf(now, ARGV[5], ARGV[6])
    if limit == nil then
        return {-1, 'unknown account'}
    end
    recover_until = now + tonumber(ARGV[6])
end

if current then
    -- The same grant asked again (a lost answer), or a slot handed to this
    -- ticket: take it over with this node's ttl and label.
    local holder = cjson.decode(redis.call('HGET', KEYS[2], id) or '{"fence":0}')
    local fence = holder.fence or 0
    if holder.stream == '' or holder.stream == nil then
        redis.call('HSET', KEYS[2], id, holder_json(ARGV[3], ARGV[4], now, fence))
    end
    local deadline = now + ttl
    redis.call('ZADD', KEYS[1], fmt('%d', deadline), id)
    keep_keys(now, deadline, KEYS[1], false)
    return {1, fence, deadline, in_use, limit}
end

local granted = false
local last = 0       -- the latest hand-off deadline written below, 0 if none
local fresh = false  -- the fence counter was new: its key has no TTL yet
if now >= recover_until and (limit == 0 or in_use < limit) then
    -- A slot is free. It goes to the oldest live ticket (this ask may be it).
    reap_tickets(now_s)
    while limit == 0 or in_use < limit do
        local head = pop_ticket()
        if not head or head == id then
            break -- none queued, or this ask is the oldest: it takes the slot below
        end
        -- A slot freed without a release (an expiry, a raised limit): the
        -- oldest ticket gets it, held for its node to take over.
        local new
        last, new = hand_off(head, now, handoff, ARGV[8], ARGV[9])
        fresh = fresh or new
        in_use = in_use + 1
    end
    -- Room left means the queue is empty now, or this id was its head: if
    -- it was queued further back, the loop went on until it came out or
    -- the room ran out.
    granted = limit == 0 or in_use < limit
end

if not granted then
    local reason, retry = 'full', nil
    if now < recover_until then
        reason, retry = 'recovering', recover_until - now
    else
        local soonest = first
        if last > 0 and (not soonest or last < soonest) then
            soonest = last
        end
        retry = soonest and math.max(1, soonest - now) or 1
    end
    local position = 0
    if ticket_ttl > 0 then
        -- Arrival in ms to the microsecond: tickets of one millisecond are
        -- served in the order they came, not in the order of their names.
        local us = tonumber(t[2])
        redis.call('ZADD', KEYS[5], 'NX', fmt('%s%03d.%03d', t[1], math.floor(us / 1000), us % 1000),
                   id)
        redis.call('ZADD', KEYS[6], fmt('%d', now + ticket_ttl), id)
        position = redis.call('ZRANK', KEYS[5], id) + 1
        keep_keys(now, now + ticket_ttl, KEYS[5], last > 0)
    elseif last > 0 then
        keep_keys(now, last, KEYS[1], true)
    end
    return {0, retry, in_use, limit, reason, position, now}
end

local fence, new = next_fence(now)
in_use = in_use + 1
local deadline = now + ttl
redis.call('HSET', KEYS[2], id, holder_json(ARGV[3], ARGV[4], now, fence))
redis.call('ZADD', KEYS[1], fmt('%d', deadline), id)
keep_keys(now, math.max(deadline, last), KEYS[1], fresh or new)
return {1, fence, deadline, in_use, limit}
