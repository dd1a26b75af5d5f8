//! The Lua scripts that change the shared queues. Each runs atomically in Redis, so a task is
//! never taken twice nor lost between two commands. Every key a script touches shares the
//! `{prefix}` hash tag, so on Redis Cluster they all live in one slot; the keys a script
//! derives from a task's type (`{prefix}:q:<type>`, …) are in that same slot.
//!
//! Layout (see `docs/REDIS.md`): `t:<id>` hash per task; `q:<type>` ready tasks (sorted set,
//! score `-priority`, member `<seq:016>:<id>`, so equal priorities run in submission order and
//! a member starting with `!` goes before them); `delayed:<type>` (score: when due);
//! `leases` (score: when the lease ends); `dead:<type>` list; `seq` counter; `stats` hash.

/// KEYS: task, queue, delayed, seq. ARGV: id, type, data, priority, max_retries, timeout,
/// now, due (0: ready now), wake channel, queue limit, watcher (who is told on the done
/// channel when the task ends: an instance id, `*` for everyone, '' for no one).
/// Returns 1 queued, -1 queue full, -2 id taken.
pub(super) const ENQUEUE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return -2 end
if redis.call('ZCARD', KEYS[2]) + redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[10]) then return -1 end
local seq = redis.call('INCR', KEYS[4])
local member = string.format('%016d:%s', seq, ARGV[1])
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'type', ARGV[2], 'data', ARGV[3], 'priority', ARGV[4],
  'max_retries', ARGV[5], 'timeout', ARGV[6], 'attempts', 0, 'status', 'queued',
  'created_at', ARGV[7], 'member', member, 'watcher', ARGV[11])
if tonumber(ARGV[8]) > 0 then
  redis.call('ZADD', KEYS[3], ARGV[8], ARGV[1])
  redis.call('PUBLISH', ARGV[9], ARGV[2])
else
  redis.call('ZADD', KEYS[2], -tonumber(ARGV[4]), member)
  if redis.call('ZCARD', KEYS[2]) == 1 then redis.call('PUBLISH', ARGV[9], ARGV[2]) end
end
return 1
";

/// KEYS: queue, delayed, leases. ARGV: most to take, now, lease end, instance, task key
/// prefix. Moves due delayed tasks to the queue, then takes up to n tasks, each with a lease.
/// Returns {{id, data, priority, max_retries, timeout, attempt, created_at}...}, and when
/// nothing was taken, when the next delayed task is due ('' if none).
pub(super) const TAKE: &str = r"
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[2], 'LIMIT', 0, 1000)
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[2], id)
  local f = redis.call('HMGET', ARGV[5] .. id, 'status', 'priority', 'member')
  if f[1] == 'queued' then redis.call('ZADD', KEYS[1], -(tonumber(f[2]) or 0), f[3]) end
end
local out = {}
local n = tonumber(ARGV[1])
while #out < n do
  local popped = redis.call('ZPOPMIN', KEYS[1])
  if #popped == 0 then break end
  local id = string.match(popped[1], '([^:]+)$')
  local h = ARGV[5] .. id
  local f = redis.call('HMGET', h, 'status', 'data', 'priority', 'max_retries', 'timeout', 'attempts', 'created_at')
  if f[1] == 'queued' then
    local attempt = (tonumber(f[6]) or 0) + 1
    redis.call('HSET', h, 'status', 'running', 'attempts', attempt, 'started_at', ARGV[2], 'instance', ARGV[4])
    redis.call('ZADD', KEYS[3], ARGV[3], id)
    out[#out + 1] = {id, f[2] or 'null', f[3] or '0', f[4] or '', f[5] or '', tostring(attempt), f[7] or ARGV[2]}
  end
end
if #out == 0 then
  local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  return {out, nxt[2] or ''}
end
return {out, ''}
";

/// KEYS: task, leases, queue, delayed, dead, stats. ARGV: id, attempt, instance, kind
/// (`final`, `retry`, `requeue`), status, result, error, worker, now, record ttl, due, done
/// channel, wake channel, type, progress.
/// Only the holder of the attempt may end it: returns 1 when recorded, 2 when the task was
/// cancelled meanwhile, -1 for a stale attempt (counted in `stats`), 0 when the task is gone.
pub(super) const FINISH: &str = r"
local f = redis.call('HMGET', KEYS[1], 'status', 'attempts', 'instance', 'member', 'priority')
if not f[1] then return 0 end
local attempts = tonumber(f[2]) or 0
if f[1] == 'cancelled' then return 2 end
if attempts ~= tonumber(ARGV[2]) or (f[1] == 'running' and f[3] ~= ARGV[3]) then
  redis.call('HINCRBY', KEYS[6], 'stale_results', 1)
  return -1
end
if f[1] == 'queued' then
  -- The lease ran out and the task was queued again, but nobody has taken it since: this
  -- attempt still ends it.
  redis.call('ZREM', KEYS[3], f[4])
  redis.call('ZREM', KEYS[4], ARGV[1])
elseif f[1] ~= 'running' then
  redis.call('HINCRBY', KEYS[6], 'stale_results', 1)
  return -1
end
redis.call('ZREM', KEYS[2], ARGV[1])
local kind = ARGV[4]
if kind == 'requeue' then
  local m = f[4]
  if string.sub(m, 1, 1) ~= '!' then m = '!' .. m end
  redis.call('HSET', KEYS[1], 'status', 'queued', 'attempts', attempts - 1, 'member', m)
  redis.call('ZADD', KEYS[3], -(tonumber(f[5]) or 0), m)
  redis.call('PUBLISH', ARGV[13], ARGV[14])
  return 1
end
if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'worker_id', ARGV[8]) end
if ARGV[15] ~= '' then redis.call('HSET', KEYS[1], 'progress', ARGV[15]) end
if kind == 'retry' then
  redis.call('HSET', KEYS[1], 'status', 'queued', 'error', ARGV[7])
  redis.call('ZADD', KEYS[4], ARGV[11], ARGV[1])
  redis.call('PUBLISH', ARGV[13], ARGV[14])
  return 1
end
redis.call('HSET', KEYS[1], 'status', ARGV[5], 'finished_at', ARGV[9])
if ARGV[5] == 'completed' then
  redis.call('HSET', KEYS[1], 'result', ARGV[6])
else
  redis.call('HSET', KEYS[1], 'error', ARGV[7])
end
if ARGV[5] == 'dead' or ARGV[5] == 'timed_out' then
  redis.call('RPUSH', KEYS[5], ARGV[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[10])
end
-- Only watched tasks are announced; an instance's own waiters hear from it directly.
local watcher = redis.call('HGET', KEYS[1], 'watcher')
if watcher and watcher ~= '' and watcher ~= ARGV[3] then redis.call('PUBLISH', ARGV[12], ARGV[1]) end
return 1
";

/// KEYS: leases. ARGV: lease end, task key prefix, instance, then (id, attempt) pairs.
/// Extends the leases this instance still holds; returns the ids it no longer holds.
pub(super) const RENEW: &str = r"
local lost = {}
for i = 4, #ARGV, 2 do
  local id = ARGV[i]
  local f = redis.call('HMGET', ARGV[2] .. id, 'status', 'attempts', 'instance')
  if f[1] == 'running' and f[2] == ARGV[i + 1] and f[3] == ARGV[3] then
    redis.call('ZADD', KEYS[1], ARGV[1], id)
  else
    lost[#lost + 1] = id
  end
end
return lost
";

/// KEYS: leases. ARGV: now, key base (`{prefix}`), done channel, wake channel.
/// Tasks whose lease ran out go back to the head of their queue, or to the dead-letter list
/// when that was their last attempt. Returns how many were reaped.
pub(super) const REAP: &str = r"
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 500)
local n = 0
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local h = ARGV[2] .. ':t:' .. id
  local f = redis.call('HMGET', h, 'status', 'attempts', 'max_retries', 'type', 'priority', 'member', 'instance')
  if f[1] == 'running' then
    local why = 'lease expired: instance ' .. (f[7] or '?') .. ' stopped renewing it'
    if (tonumber(f[2]) or 0) >= (tonumber(f[3]) or 3) + 1 then
      redis.call('HSET', h, 'status', 'dead', 'finished_at', ARGV[1], 'error', why)
      redis.call('RPUSH', ARGV[2] .. ':dead:' .. f[4], id)
      redis.call('PUBLISH', ARGV[3], id)
    else
      local m = f[6]
      if string.sub(m, 1, 1) ~= '!' then m = '!' .. m end
      redis.call('HSET', h, 'status', 'queued', 'member', m, 'error', why)
      redis.call('ZADD', ARGV[2] .. ':q:' .. f[4], -(tonumber(f[5]) or 0), m)
      redis.call('PUBLISH', ARGV[4], f[4])
    end
    n = n + 1
  end
end
return n
";

/// KEYS: task, leases. ARGV: id, now, key base, done channel, cancel channel, record ttl.
/// Returns `cancelled:<previous status>`, the status of a task that already ended, or nil.
pub(super) const CANCEL: &str = r"
local f = redis.call('HMGET', KEYS[1], 'status', 'type', 'member')
if not f[1] then return false end
if f[1] == 'queued' then
  redis.call('ZREM', ARGV[3] .. ':q:' .. f[2], f[3])
  redis.call('ZREM', ARGV[3] .. ':delayed:' .. f[2], ARGV[1])
elseif f[1] == 'running' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('PUBLISH', ARGV[5], ARGV[1])
else
  return f[1]
end
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished_at', ARGV[2], 'error', 'cancelled')
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('PUBLISH', ARGV[4], ARGV[1])
return 'cancelled:' .. f[1]
";

/// KEYS: task, seq. ARGV: id, key base, wake channel.
/// Moves a dead-lettered task back to its queue with fresh attempts. Returns `queued`, the
/// status of a task that is not dead-lettered, or nil.
pub(super) const REQUEUE: &str = r"
local f = redis.call('HMGET', KEYS[1], 'status', 'type', 'priority')
if not f[1] then return false end
if redis.call('LREM', ARGV[2] .. ':dead:' .. f[2], 0, ARGV[1]) == 0 then return f[1] end
local seq = redis.call('INCR', KEYS[2])
local m = string.format('%016d:%s', seq, ARGV[1])
redis.call('HSET', KEYS[1], 'status', 'queued', 'attempts', 0, 'member', m)
redis.call('HDEL', KEYS[1], 'finished_at', 'result', 'started_at', 'progress')
redis.call('PERSIST', KEYS[1])
redis.call('ZADD', ARGV[2] .. ':q:' .. f[2], -(tonumber(f[3]) or 0), m)
redis.call('PUBLISH', ARGV[3], f[2])
return 'queued'
";

/// KEYS: task. Marks an existing task as watched by everyone: its end is announced on the
/// done channel whoever ends it.
pub(super) const ANNOUNCE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'watcher', '*') end
";
