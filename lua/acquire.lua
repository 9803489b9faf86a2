-- acquire.lua - take one slot of an account's limit, or say when to ask again.
--
-- KEYS: 1 sfl:{a:<id>}:leases   ZSET  lease id -> deadline (ms, Redis server time)
--       2 sfl:{a:<id>}:holders  HASH  lease id -> {"node","stream","since_ms","fence"}
--       3 sfl:{a:<id>}:conf     HASH  max_streams, name, updated_ms, epoch_ms, recover_until_ms
--       4 sfl:{a:<id>}:fence    STRING grant counter (fencing token)
-- ARGV: 1 lease id (chosen by the node; asking again with the same id is idempotent)
--       2 ttl ms
--       3 node id
--       4 stream label (never a URL)
--       5 max_streams the node last knew, -1 if none: restores conf if Redis lost it
--       6 recovery window ms, opened when conf has to be restored
-- returns: {1, fence, deadline_ms, in_use, limit}          granted
--          {0, retry_ms, in_use, limit, "full"|"recovering"} denied; retry_ms = when a slot
--                                                       can free up at the earliest
--          {-1, "unknown account"}                     no conf and no limit known
--
-- Time comes only from TIME. Expired leases are reaped before counting, so a
-- crashed node's slots come back by themselves. max_streams 0 = unlimited: the
-- lease is still recorded (for status and holders), never denied.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id, ttl = ARGV[1], tonumber(ARGV[2])

local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
if #expired > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
    redis.call('HDEL', KEYS[2], unpack(expired))
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

local in_use = redis.call('ZCARD', KEYS[1])
local current = redis.call('ZSCORE', KEYS[1], id)
if not current then
    if now < recover_until then
        return {0, recover_until - now, in_use, limit, 'recovering'}
    end
    if limit > 0 and in_use >= limit then
        local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
        return {0, math.max(1, tonumber(first[2]) - now), in_use, limit, 'full'}
    end
end

local fence
if current then
    -- The reply to an earlier ask was lost: it is the same grant.
    fence = cjson.decode(redis.call('HGET', KEYS[2], id) or '{"fence":0}').fence
else
    fence = redis.call('INCR', KEYS[4])
    if fence == 1 then
        -- The counter expired with the idle account: start above any token it gave.
        fence = now
        redis.call('SET', KEYS[4], fence)
    end
    in_use = in_use + 1
    redis.call('HSET', KEYS[2], id, cjson.encode({node = ARGV[3], stream = ARGV[4],
                                                  since_ms = now, fence = fence}))
end
local deadline = now + ttl
redis.call('ZADD', KEYS[1], deadline, id)

-- Idle keys go away a little after the last deadline; conf stays.
local last = tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2])
local keep = last - now + 10000
redis.call('PEXPIRE', KEYS[1], keep)
redis.call('PEXPIRE', KEYS[2], keep)
redis.call('PEXPIRE', KEYS[4], keep)
return {1, fence, deadline, in_use, limit}
