-- conf.lua - set a login's limit (and name): an account's first login's conf
-- is the account's own.
--
-- KEYS: 1 sfl:{a:<id>}:conf  HASH  max_streams, name, updated_ms, reserve, cooldown_ms,
--                                  max_age_ms
--       2 sfl:epoch         HASH  the namespace's epoch marker (epoch.lua)
-- ARGV: 1 max_streams (integer >= 0; 0 = unlimited)
--       2 name ("" keeps the current one)
--       3 recovery window ms, opened if the epoch marker is missing (a Redis
--         that lost its data; 0 when the caller knows no lease exists). A
--         new account in an intact Redis grants at once.
--       4 reserve (optional; 0 removes it): slots kept for connections sfl cannot
--         see; acquire.lua grants while leases + reserve < max_streams
--       5 cooldown_ms (optional; 0 removes it): release.lua keeps a freed slot
--         counted this long
--       6 max_age_ms (optional; 0 removes it): others' connections on the login
--         come from a source (others.lua); acquire.lua grants nothing while
--         their figure is older than this, or there is none yet
-- returns: {previous max_streams (-1 if none), recovering ms}
--
-- Built with prelude.lua in front.
local now = redis_now()
local prev = tonumber(redis.call('HGET', KEYS[1], 'max_streams')) or -1
redis.call('HSET', KEYS[1], 'max_streams', ARGV[1], 'updated_ms', now)
if ARGV[2] ~= '' then
    redis.call('HSET', KEYS[1], 'name', ARGV[2])
end
for i, field in ipairs({'reserve', 'cooldown_ms', 'max_age_ms'}) do
    local v = tonumber(ARGV[3 + i])
    if v and v > 0 then
        redis.call('HSET', KEYS[1], field, ARGV[3 + i])
    elseif v then
        redis.call('HDEL', KEYS[1], field)
    end
end
local until_ms = epoch_window(now, ARGV[3])
return {prev, math.max(0, until_ms - now)}
