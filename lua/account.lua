-- account.lua - describe an account's logins where operators and other
-- nodes look for them: its own conf hash (the first login's conf too,
-- unless its logins live under another account's keys).
--
-- KEYS: 1 sfl:{a:<id>}:conf  HASH  gains name, logins, waiters, group
-- ARGV: 1 name ("" keeps the current one)
--       2 logins: a JSON array [{"id","max_streams","keys"}], keys being the
--         prefix of the login's leases/holders/conf/fence keys (src/routes.h);
--         "" for an account of one login named after it under its own keys
--       3 waiters: the prefix of the account's waiters keys ("" with ARGV 2 "")
--       4 group: the account whose hash tag the account's keys carry, when
--         not its own (""). acquire.lua and renew.lua refuse a call made with
--         this conf as the first login's: it comes from a node that takes the
--         account for a lone login.
--       5 "replace" (an operator's PUT): make the hash say exactly ARGV 2-4,
--         removing what they leave out; anything else: what ARGV 2-4 leave
--         out stays. A node started with an older config (the account
--         alone) must not lift the fence that keeps it off the group's
--         login: the configs disagree, and the refusal says so.
-- returns: 1 when the hash kept logins or a group that ARGV 2-4 leave out
--          (the caller warns), else 0
--
-- Built with prelude.lua in front. Never holds a URL or a credential.
if ARGV[1] ~= '' then
    redis.call('HSET', KEYS[1], 'name', ARGV[1])
end
local replace = ARGV[5] == 'replace'
local kept = 0
if ARGV[2] ~= '' then
    redis.call('HSET', KEYS[1], 'logins', ARGV[2], 'waiters', ARGV[3])
elseif replace then
    redis.call('HDEL', KEYS[1], 'logins', 'waiters')
elseif redis.call('HEXISTS', KEYS[1], 'logins') == 1 then
    kept = 1
end
if ARGV[4] ~= '' then
    redis.call('HSET', KEYS[1], 'group', ARGV[4])
elseif replace then
    redis.call('HDEL', KEYS[1], 'group')
elseif redis.call('HEXISTS', KEYS[1], 'group') == 1 then
    kept = 1
end
return kept
