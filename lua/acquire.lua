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
-- TTL would fall short (keep_keys below), not on every call.
local KEEP_MS = 10000  -- idle keys outlive the last deadline or ticket by this much
local SLACK_MS = 500   -- ... plus up to this, so that most calls need not touch TTLs
local FETCH = 8        -- leases read in one call; an account with more is counted instead
local fmt = string.format -- numbers go to Redis as '%d': tostring's '%.14g' costs more

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
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
    local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_s)
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_s)
    redis.call('HDEL', KEYS[2], unpack(expired))
    in_use, first, current = read_leases()
end

local conf = redis.call('HMGET', KEYS[3], 'max_streams', 'recover_until_ms')
local limit, recover_until = tonumber(conf[1]), tonumber(conf[2]) or 0
if limit == nil then
    -- No conf: a new account, or Redis lost its data while leases may still be
    -- in use. Restore the limit the node knew and wait out one lease TTL, in
    -- which only leases that already existed can be re-taken (renew.lua).
    local known = tonumber(ARGV[5])
    if known == nil or known < 0 then
        return {-1, 'unknown account'}
    end
    limit, recover_until = known, now + tonumber(ARGV[6])
    redis.call('HSET', KEYS[3], 'max_streams', limit, 'updated_ms', now,
               'epoch_ms', now, 'recover_until_ms', recover_until)
end

-- Idle keys expire KEEP_MS after the last deadline and the last ticket
-- expiry; conf stays. `last` is the latest time this call wrote into a key
-- whose TTL pttl_key tells. The TTL is read, never assumed: whoever wrote
-- the keys before (another version of these scripts too), no key is given
-- an expiry earlier than its data needs.
local function keep_keys(last, pttl_key, force)
    if not force then
        local left = redis.call('PTTL', pttl_key)
        if left >= 0 and now + left >= last + KEEP_MS then
            return
        end
    end
    local l = tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2]) or 0
    local w = tonumber(redis.call('ZRANGE', KEYS[6], -1, -1, 'WITHSCORES')[2]) or 0
    local at = math.max(last, l, w) + KEEP_MS + SLACK_MS
    for _, k in ipairs({KEYS[1], KEYS[2], KEYS[4], KEYS[5], KEYS[6]}) do
        redis.call('PEXPIREAT', k, fmt('%d', at))
    end
end

-- The next fencing token; true as second value if the counter was new.
local function next_fence()
    local f = redis.call('INCR', KEYS[4])
    if f == 1 then
        -- The counter expired with the idle account: start above any token it gave.
        f = now
        redis.call('SET', KEYS[4], now_s)
        return f, true
    end
    return f, false
end

local function holder_json(node, stream, fence)
    return fmt('{"node":%s,"stream":%s,"since_ms":%d,"fence":%d}', cjson.encode(node),
               cjson.encode(stream), now, fence)
end

if current then
    -- The same grant asked again (a lost answer), or a slot handed to this
    -- ticket: take it over with this node's ttl and label.
    local holder = cjson.decode(redis.call('HGET', KEYS[2], id) or '{"fence":0}')
    local fence = holder.fence or 0
    if holder.stream == '' or holder.stream == nil then
        redis.call('HSET', KEYS[2], id, holder_json(ARGV[3], ARGV[4], fence))
    end
    local deadline = now + ttl
    redis.call('ZADD', KEYS[1], fmt('%d', deadline), id)
    keep_keys(deadline, KEYS[1], false)
    return {1, fence, deadline, in_use, limit}
end

local granted = false
local last = 0       -- the latest hand-off deadline written below, 0 if none
local fresh = false  -- the fence counter was new: its key has no TTL yet
if now >= recover_until and (limit == 0 or in_use < limit) then
    -- A slot is free. It goes to the oldest live ticket (this ask may be it).
    local stale = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', now_s)
    if #stale > 0 then
        redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now_s)
        redis.call('ZREM', KEYS[5], unpack(stale))
    end
    while limit == 0 or in_use < limit do
        local head = redis.call('ZPOPMIN', KEYS[5])[1]
        if not head then
            break
        end
        redis.call('ZREM', KEYS[6], head)
        if head == id then
            break -- this ask is the oldest: it takes the slot below
        end
        -- A slot freed without a release (an expiry, a raised limit): the
        -- oldest ticket gets it, held for its node to take over, and its
        -- node is told.
        local node = string.match(head, '^(.*):[^:]*$') or head
        local fence, new = next_fence()
        fresh = fresh or new
        last = now + handoff
        redis.call('ZADD', KEYS[1], fmt('%d', last), head)
        redis.call('HSET', KEYS[2], head, holder_json(node, '', fence))
        redis.call('PUBLISH', ARGV[8] .. ':' .. node, fmt('%s %s %d %d', ARGV[9], head, last, fence))
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
        keep_keys(now + ticket_ttl, KEYS[5], last > 0)
    elseif last > 0 then
        keep_keys(last, KEYS[1], true)
    end
    return {0, retry, in_use, limit, reason, position, now}
end

local fence, new = next_fence()
in_use = in_use + 1
local deadline = now + ttl
redis.call('HSET', KEYS[2], id, holder_json(ARGV[3], ARGV[4], fence))
redis.call('ZADD', KEYS[1], fmt('%d', deadline), id)
keep_keys(math.max(deadline, last), KEYS[1], fresh or new)
return {1, fence, deadline, in_use, limit}
