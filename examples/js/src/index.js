export { Guard, Fingerprint } from './guard.js';
export { MemoryStore } from './store/memory.js';
export { jspiSupported, buildInfo } from './component.js';
export * from './errors.js';
// RedisStore lives in './store/redis.js' so that users of the memory store need not install ioredis.
