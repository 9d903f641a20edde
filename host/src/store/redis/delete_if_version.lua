-- KEYS[1]: the record hash. ARGV[1]: expected version. Returns 1 when deleted, 0 otherwise.
if redis.call('HGET', KEYS[1], 'n') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
