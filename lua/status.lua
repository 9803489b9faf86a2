-- status.lua - one account as operators see it. Read-only: leases past their
-- deadline are not counted (the next acquire reaps them).
--
-- KEYS: 1 sfl:{a:<id>}:leases       ZSET
--       2 sfl:{a:<id>}:holders      HASH
--       3 sfl:{a:<id>}:conf         HASH
--       4 sfl:{a:<id>}:waiters:exp  ZSET  ticket -> expiry
--       5 sfl:epoch                 HASH  the namespace's epoch marker (epoch.lua)
-- ARGV: none
-- returns: {limit (-1 if no conf), name or "", in_use, recovering_ms, now_ms,
--           waiting (live tickets: nodes queued for a slot),
--           lease id 1, deadline 1, holder JSON 1, lease id 2, ...}
--
-- Built with prelude.lua in front.
local now = redis_now()
local conf = redis.call('HMGET', KEYS[3], 'max_streams', 'name')
local limit = tonumber(conf[1]) or -1
local until_ms = tonumber(redis.call('HGET', KEYS[5], 'recover_until_ms')) or 0
local recovering = math.max(0, until_ms - now)
local live = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES')
local waiting = redis.call('ZCOUNT', KEYS[4], '(' .. now, '+inf')
local out = {limit, conf[2] or '', #live / 2, recovering, now, waiting}
for i = 1, #live, 2 do
    out[#out + 1] = live[i]
    out[#out + 1] = tonumber(live[i + 1])
    out[#out + 1] = redis.call('HGET', KEYS[2], live[i]) or '{}'
end
return out
