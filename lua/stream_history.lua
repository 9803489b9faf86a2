-- stream_history.lua - keeps a stream's last results, newest first
-- (history format v1: README "History"). Sent in the same round trip as
-- the result itself is stored (pipelined with result.lua, or alone by
-- `sflimit check`), never one more.
--
-- KEYS: 1 <ns>:stream:<stream id>:history  LIST  result JSON (no URL), newest first
-- ARGV: 1 result JSON
--       2 how many to keep (>= 1)
--       3 PEXPIRE ms (the retention)
-- returns: the list's length after the push
--
-- Built with prelude.lua in front (it only defines things).
local keep = tonumber(ARGV[2]) or 1
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, keep - 1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return redis.call('LLEN', KEYS[1])
