-- KEYS[1]: the record hash. ARGV[1]: expected version, ARGV[2]: value, ARGV[3]: new version, ARGV[4]: ttl in ms.
-- Returns {1} when swapped, {0, value, version} on a conflict with a live record, {0} when absent.
local current = redis.call('HMGET', KEYS[1], 'v', 'n')
if current[2] and current[2] == ARGV[1] then
  redis.call('HSET', KEYS[1], 'v', ARGV[2], 'n', ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return {1}
end
if current[1] or current[2] then
  return {0, current[1], current[2]}
end
return {0}
