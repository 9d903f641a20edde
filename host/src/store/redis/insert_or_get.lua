-- KEYS[1]: the record hash. ARGV[1]: value, ARGV[2]: new version, ARGV[3]: ttl in ms.
-- Returns {1} when inserted, {0, value, version} when a live record exists.
-- Versions stay strings: Lua numbers are doubles and would round 64-bit versions.
local current = redis.call('HMGET', KEYS[1], 'v', 'n')
if current[1] or current[2] then
  return {0, current[1], current[2]}
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'n', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1}
