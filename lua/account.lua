-- account.lua - describe an account's logins where operators and other
-- nodes look for them: its own conf hash (the first login's conf too,
-- unless its logins live under another account's keys).
--
-- KEYS: 1 sfl:{a:<id>}:conf  HASH  gains name, logins, group
-- ARGV: 1 name ("" keeps the current one)
--       2 logins: a JSON array [{"id","max_streams","keys"}], keys being the
--         prefix of the login's leases/holders/conf/fence keys (src/routes.h);
--         "" for an account of one login under its own keys (field removed)
--       3 waiters: the prefix of the account's waiters keys ("" with ARGV 2 "")
--       4 group: the account whose hash tag the account's keys carry, when
--         not its own ("" removes the field). acquire.lua and renew.lua
--         refuse a call made with this conf as the first login's: it comes
--         from a node that still takes the account for a lone one.
-- returns: 1
--
-- Built with prelude.lua in front. Never holds a URL or a credential.
if ARGV[1] ~= '' then
    redis.call('HSET', KEYS[1], 'name', ARGV[1])
end
if ARGV[2] ~= '' then
    redis.call('HSET', KEYS[1], 'logins', ARGV[2], 'waiters', ARGV[3])
else
    redis.call('HDEL', KEYS[1], 'logins', 'waiters')
end
if ARGV[4] ~= '' then
    redis.call('HSET', KEYS[1], 'group', ARGV[4])
else
    redis.call('HDEL', KEYS[1], 'group')
end
return 1
