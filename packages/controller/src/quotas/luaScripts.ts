import { createHash } from 'node:crypto';

/** A Lua script run by EVALSHA (loaded on NOSCRIPT). */
export interface LuaScript {
  name: string;
  source: string;
  sha: string;
}

function script(name: string, source: string): LuaScript {
  return { name, source, sha: createHash('sha1').update(source).digest('hex') };
}

/**
 * Check-and-increment every bucket of one create, all or nothing, and stash the decrement set.
 * KEYS[1] quota:epoch  KEYS[2] quota:bunker:{id}  KEYS[3] quota:buckets  KEYS[4] quota:bunkers
 * KEYS[5..] the bucket counters; ARGV[1] the bunker id, then per counter its amount and cap ('' = none).
 * Answers {'ok'} | {'exceeded', index (0-based), current} | {'not_ready'} (no epoch: rebuild first).
 */
export const CHARGE = script(
  'charge',
  `
if redis.call('EXISTS', KEYS[1]) == 0 then return {'not_ready'} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {'ok'} end
local n = #KEYS - 4
for i = 1, n do
  local amount = tonumber(ARGV[2 * i])
  local cap = ARGV[2 * i + 1]
  if amount > 0 and cap ~= '' then
    local current = tonumber(redis.call('GET', KEYS[4 + i]) or '0')
    if current + amount > tonumber(cap) then return {'exceeded', i - 1, current} end
  end
end
for i = 1, n do
  local key = KEYS[4 + i]
  redis.call('INCRBY', key, ARGV[2 * i])
  redis.call('SADD', KEYS[3], key)
  redis.call('HSET', KEYS[2], key, ARGV[2 * i])
end
if n > 0 then redis.call('SADD', KEYS[4], ARGV[1]) end
return {'ok'}
`,
);

/**
 * Decrement exactly the stashed set of one bunker and forget it; idempotent.
 * KEYS[1] quota:bunker:{id}  KEYS[2] quota:bunkers  KEYS[3] quota:buckets; ARGV[1] the bunker id.
 * Counters back at 0 are deleted. Answers 1 when something was released, else 0.
 */
export const RELEASE = script(
  'release',
  `
local set = redis.call('HGETALL', KEYS[1])
if #set == 0 then return 0 end
for i = 1, #set, 2 do
  local left = redis.call('DECRBY', set[i], set[i + 1])
  if left == 0 then
    redis.call('DEL', set[i])
    redis.call('SREM', KEYS[3], set[i])
  end
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return 1
`,
);

/**
 * Replace every counter and stash by the charge sets of the active bunker rows, then set the epoch.
 * KEYS[1] quota:epoch  KEYS[2] quota:buckets  KEYS[3] quota:bunkers
 * ARGV[1] the new epoch, ARGV[2] the stash key prefix, ARGV[3] JSON [[bunker id, [key, amount, …]], …].
 */
export const REBUILD = script(
  'rebuild',
  `
for _, key in ipairs(redis.call('SMEMBERS', KEYS[2])) do redis.call('DEL', key) end
for _, id in ipairs(redis.call('SMEMBERS', KEYS[3])) do redis.call('DEL', ARGV[2] .. id) end
redis.call('DEL', KEYS[2], KEYS[3])
for _, b in ipairs(cjson.decode(ARGV[3])) do
  local id, charges = b[1], b[2]
  for i = 1, #charges, 2 do
    redis.call('INCRBY', charges[i], charges[i + 1])
    redis.call('SADD', KEYS[2], charges[i])
    redis.call('HSET', ARGV[2] .. id, charges[i], charges[i + 1])
  end
  if #charges > 0 then redis.call('SADD', KEYS[3], id) end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
`,
);

/** Delete the lock only if this holder still has it. KEYS[1] the lock, ARGV[1] the holder's token. */
export const UNLOCK = script(
  'unlock',
  `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`,
);
