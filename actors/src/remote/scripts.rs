//! The Lua scripts that change the shared queues. Each runs atomically in Redis, so a task is
//! never taken twice nor lost between two commands. Every key a script touches shares the
//! `{prefix}` hash tag, so on Redis Cluster they all live in one slot; the keys a script
//! derives from a task's type (`{prefix}:q:<type>`, …) are in that same slot.
//!
//! Layout (see `docs/REDIS.md`): `t:<id>` hash per task; `q:<type>` ready tasks (sorted set,
//! score `-priority`, member `<ms:013><n:06>:<id>`, so equal priorities run in submission
//! order and a member starting with `!` goes before them); `delayed:<type>` (score: when
//! due); `leases` (score: when the lease ends); `dead:<type>` list; `stats` hash.

/// The member that puts a task at the head of its queue (its own, marked with `!`; one made
/// from its id when it has none): the one rule for the scripts that send a task back first.
macro_rules! head_rule {
    () => {
        r"
local function head(m, id)
  m = m or ('0000000000000000000:' .. id)
  if string.sub(m, 1, 1) ~= '!' then m = '!' .. m end
  return m
end
"
    };
}

/// KEYS: stats (only so the call goes to the keys' slot). ARGV: key base, now (for the
/// record), wake channel, then per task 10 values: id, type, data, priority, max_retries,
/// timeout, delay (ms; 0: ready now), queue limit, watcher (who is told on the done channel
/// when the task ends: an instance id, `*` for everyone, '' for no one), queue member without
/// its time (`<counter:06>:<id>`). Delays and the time in front of the member are the Redis
/// server's, so instances whose clocks differ still agree on when a task is due and on
/// submission order. Returns per task 1 queued, -1 queue full, or 0 fenced: its queueing was
/// given up as not done (`RESOLVE`), so this late write queues nothing. (Ids are fresh UUIDs,
/// never reused.)
pub(super) const ENQUEUE: &str = r"
local base, now = ARGV[1], ARGV[2]
local t = redis.call('TIME')
local snow = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local stamp = string.format('%013d', snow)
local waiting, was_empty, out = {}, {}, {}
for i = 4, #ARGV, 10 do
  local id, ttype, priority, delay = ARGV[i], ARGV[i + 1], ARGV[i + 3], tonumber(ARGV[i + 6])
  local q, d = base .. ':q:' .. ttype, base .. ':delayed:' .. ttype
  if waiting[ttype] == nil then
    local ready = redis.call('ZCARD', q)
    was_empty[ttype] = ready == 0
    waiting[ttype] = ready + redis.call('ZCARD', d)
  end
  if redis.call('EXISTS', base .. ':fenced:' .. id) == 1 then
    out[#out + 1] = 0
  elseif waiting[ttype] >= tonumber(ARGV[i + 7]) then
    out[#out + 1] = -1
  else
    local member = stamp .. ARGV[i + 9]
    redis.call('HSET', base .. ':t:' .. id, 'id', id, 'type', ttype, 'data', ARGV[i + 2], 'priority', priority,
      'max_retries', ARGV[i + 4], 'timeout', ARGV[i + 5], 'attempts', '0', 'status', 'queued',
      'created_at', now, 'member', member, 'watcher', ARGV[i + 8])
    if delay > 0 then
      redis.call('ZADD', d, snow + delay, id)
      redis.call('PUBLISH', ARGV[3], ttype)
    else
      redis.call('ZADD', q, -tonumber(priority), member)
    end
    waiting[ttype] = waiting[ttype] + 1
    out[#out + 1] = 1
  end
end
for ttype, empty in pairs(was_empty) do
  if empty then redis.call('PUBLISH', ARGV[3], ttype) end
end
return out
";

/// KEYS: task, fence. ARGV: fence length (ms). Settles a queueing whose reply was lost:
/// answers the task's status when it is there; otherwise fences its id, so the write, should
/// it still arrive, queues nothing, and answers nil.
pub(super) const RESOLVE: &str = r"
local status = redis.call('HGET', KEYS[1], 'status')
if status then return status end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
return false
";

/// KEYS: queue, delayed, leases. ARGV: most to take, now (for the records), lease length
/// (ms), instance, task key prefix. Due dates and leases are timed by the Redis server's
/// clock, so instances whose clocks differ still agree on them. Moves due delayed tasks to
/// the queue, then takes up to n tasks, each with a lease.
/// Returns one flat array (cheaper to build than one per task): first, when nothing was
/// taken, in how many ms the next delayed task is due ('' otherwise or if none); then per
/// task id, data, priority, max_retries, timeout, attempt, created_at.
pub(super) const TAKE: &str = r"
local t = redis.call('TIME')
local snow = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', snow, 'LIMIT', 0, 1000)
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[2], id)
  local f = redis.call('HMGET', ARGV[5] .. id, 'status', 'priority', 'member')
  if f[1] == 'queued' then redis.call('ZADD', KEYS[1], -(tonumber(f[2]) or 0), f[3]) end
end
local out = {''}
local leases = {}
local lease_end = tostring(snow + tonumber(ARGV[3]))
local popped = redis.call('ZPOPMIN', KEYS[1], ARGV[1])
for i = 1, #popped, 2 do
  local m = popped[i]
  local id = string.sub(m, (string.find(m, ':', 1, true) or 0) + 1)
  local h = ARGV[5] .. id
  local f = redis.call('HMGET', h, 'status', 'data', 'priority', 'max_retries', 'timeout', 'attempts', 'created_at')
  if f[1] == 'queued' then
    local attempt = tostring((tonumber(f[6]) or 0) + 1)
    redis.call('HSET', h, 'status', 'running', 'attempts', attempt, 'started_at', ARGV[2], 'instance', ARGV[4])
    leases[#leases + 1] = lease_end
    leases[#leases + 1] = id
    local n = #out
    out[n + 1] = id
    out[n + 2] = f[2] or 'null'
    out[n + 3] = f[3] or '0'
    out[n + 4] = f[4] or ''
    out[n + 5] = f[5] or ''
    out[n + 6] = attempt
    out[n + 7] = f[7] or ARGV[2]
  end
end
if #leases > 0 then redis.call('ZADD', KEYS[3], unpack(leases)) end
if #out == 1 then
  local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if nxt[2] then out[1] = tostring(math.max(tonumber(nxt[2]) - snow, 0)) end
end
return out
";

/// KEYS: leases, stats. ARGV: key base, instance, now, record ttl, done channel, wake channel,
/// then per attempt 11 values (in the order `FinishCall::push_args` pushes them): id, type,
/// attempt, kind (`final`, `retry`, `requeue`; `lost_final`, `lost_retry` from a reaper),
/// status, result, error, worker, when (a retry: its backoff in ms, from now by the Redis
/// server's clock; a final status: when it ended), progress, resources (what the attempt used,
/// JSON; '' for none). A retry and a final status write progress and resources when given.
/// Only the holder of an attempt may end it: the instance it runs on or, while it is still
/// running, the instance that reaped its lease (`reaper`, see `REAP`). The same end written
/// again (a reply that was lost) changes nothing. A retry without backoff goes back to the
/// head of its queue, as a re-queue does; one with a backoff waits in `delayed`. Returns per
/// attempt: 1 recorded, 2 cancelled meanwhile, -1 stale (counted in `stats`), 0 task gone.
pub(super) const FINISH: &str = concat!(
    head_rule!(),
    r"
local base, instance, ttl = ARGV[1], ARGV[2], ARGV[4]
local t = redis.call('TIME')
local snow = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
local ended = {}
for i = 7, #ARGV, 11 do
  local id, ttype, attempt, kind, status = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  -- A reaper's write (`lost_final`, `lost_retry`) ends an attempt that was lost elsewhere.
  local lost = string.sub(kind, 1, 5) == 'lost_'
  if lost then kind = string.sub(kind, 6) end
  local h = base .. ':t:' .. id
  local f = redis.call('HMGET', h, 'status', 'attempts', 'instance', 'member', 'priority', 'watcher', 'reaper')
  local holder = (not lost and f[3] == instance) or (lost and f[1] == 'running' and f[7] == instance)
  local code = 1
  if not f[1] then
    code = 0
  elseif f[1] == 'cancelled' then
    code = 2
  elseif f[3] == instance and ((kind == 'final' and f[1] == status and f[2] == attempt)
      or (kind == 'requeue' and f[1] == 'queued' and tonumber(f[2]) == tonumber(attempt) - 1)) then
    -- This very write again (its first reply was lost, e.g. Redis stalled): already done.
    code = 1
  elseif f[2] ~= attempt or not holder or (f[1] ~= 'running' and f[1] ~= 'queued') then
    -- A worker's result that came too late; a reaper that lost its claim dropped nothing.
    if not lost then redis.call('HINCRBY', KEYS[2], 'stale_results', 1) end
    code = -1
  else
    if f[1] == 'queued' then
      -- The lease ran out and the task was queued again, but nobody has taken it since:
      -- this attempt still ends it.
      redis.call('ZREM', base .. ':q:' .. ttype, f[4] or '')
      redis.call('ZREM', base .. ':delayed:' .. ttype, id)
    end
    ended[#ended + 1] = id
    if f[7] then redis.call('HDEL', h, 'reaper') end
    if kind == 'requeue' then
      local m = head(f[4], id)
      redis.call('HSET', h, 'status', 'queued', 'attempts', tostring(tonumber(attempt) - 1), 'member', m)
      redis.call('ZADD', base .. ':q:' .. ttype, -(tonumber(f[5]) or 0), m)
      redis.call('PUBLISH', ARGV[6], ttype)
    else
      if ARGV[i + 9] ~= '' then redis.call('HSET', h, 'progress', ARGV[i + 9]) end
      if ARGV[i + 10] ~= '' then redis.call('HSET', h, 'resources', ARGV[i + 10]) end
      if kind == 'retry' then
        redis.call('HSET', h, 'worker_id', ARGV[i + 7], 'status', 'queued', 'error', ARGV[i + 6])
        local backoff = tonumber(ARGV[i + 8]) or 0
        if backoff > 0 then
          redis.call('ZADD', base .. ':delayed:' .. ttype, snow + backoff, id)
        elseif lost then
          -- A lost attempt had waited its turn already: it runs again first.
          local m = head(f[4], id)
          redis.call('HSET', h, 'member', m)
          redis.call('ZADD', base .. ':q:' .. ttype, -(tonumber(f[5]) or 0), m)
        else
          -- Due now: back in its own place, as after any backoff.
          redis.call('ZADD', base .. ':q:' .. ttype, -(tonumber(f[5]) or 0), f[4] or head(nil, id))
        end
        redis.call('PUBLISH', ARGV[6], ttype)
      else
        if status == 'completed' then
          redis.call('HSET', h, 'worker_id', ARGV[i + 7], 'status', status, 'finished_at', ARGV[i + 8], 'result', ARGV[i + 5])
        else
          redis.call('HSET', h, 'worker_id', ARGV[i + 7], 'status', status, 'finished_at', ARGV[i + 8], 'error', ARGV[i + 6])
        end
        if status == 'dead' or status == 'timed_out' then
          redis.call('RPUSH', base .. ':dead:' .. ttype, id)
        else
          redis.call('PEXPIRE', h, ttl)
        end
        -- Only watched tasks are announced; an instance's own waiters hear from it directly.
        local watcher = f[6]
        if watcher and watcher ~= '' and watcher ~= instance then redis.call('PUBLISH', ARGV[5], id) end
      end
    end
  end
  out[#out + 1] = code
end
if #ended > 0 then redis.call('ZREM', KEYS[1], unpack(ended)) end
return out
"
);

/// KEYS: leases. ARGV: lease length (ms), key base, instance, then (id, attempt) pairs.
/// Extends the leases this instance still holds. A task whose lease ran out (this instance
/// was cut off) but that nobody has taken since is this instance's again: it leaves its
/// queue and is leased anew. One this instance took again since, at a newer attempt, is
/// leased too and answered `{id, "attempt:N"}`. A lease another instance reaped meanwhile but
/// has not ended yet is extended all the same, and the reap is void: the holder is alive, so
/// the reaper's verdict on the attempt is stale. Returns `{id, status}` of each task it no
/// longer holds.
pub(super) const RENEW: &str = r"
local base, lost = ARGV[2], {}
local t = redis.call('TIME')
local lease_end = tostring(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1]))
for i = 4, #ARGV, 2 do
  local id = ARGV[i]
  local h = base .. ':t:' .. id
  local f = redis.call('HMGET', h, 'status', 'attempts', 'instance', 'type', 'member')
  if f[2] == ARGV[i + 1] and f[3] == ARGV[3] and (f[1] == 'running' or f[1] == 'queued') then
    if f[1] == 'queued' and f[4] then
      redis.call('ZREM', base .. ':q:' .. f[4], f[5] or '')
      redis.call('ZREM', base .. ':delayed:' .. f[4], id)
      redis.call('HSET', h, 'status', 'running')
    end
    -- The holder is alive: a reap of this attempt meanwhile is void.
    redis.call('HDEL', h, 'reaper')
    redis.call('ZADD', KEYS[1], lease_end, id)
  elseif f[1] == 'running' and f[3] == ARGV[3] and (tonumber(f[2]) or 0) > (tonumber(ARGV[i + 1]) or 0) then
    -- Taken again by this instance since (a TAKE whose reply was lost, or is on its way):
    -- still ours; the run going on here carries the newer attempt.
    redis.call('ZADD', KEYS[1], lease_end, id)
    lost[#lost + 1] = {id, 'attempt:' .. f[2]}
  else
    lost[#lost + 1] = {id, f[1] or 'gone'}
  end
end
return lost
";

/// KEYS: leases. ARGV: key base, instance, then the ids this instance holds.
/// Tasks leased to this instance that it does not hold (a reply that never came back, a
/// restart under the same name) go back to the head of their queue without spending the
/// attempt; a reaper's claim on one ends with it. Returns how many. (A lease this instance
/// reaped is not leased to it: the task's `instance` is the one it ran on.)
pub(super) const RECONCILE: &str = concat!(
    head_rule!(),
    r"
local base, instance, held = ARGV[1], ARGV[2], {}
for i = 3, #ARGV do held[ARGV[i]] = true end
local n = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if not held[id] then
    local h = base .. ':t:' .. id
    local f = redis.call('HMGET', h, 'status', 'attempts', 'instance', 'type', 'member', 'priority')
    if f[1] == 'running' and f[3] == instance and f[4] and f[5] then
      local m = head(f[5], id)
      redis.call('HSET', h, 'status', 'queued', 'member', m, 'attempts', tostring(math.max((tonumber(f[2]) or 1) - 1, 0)))
      redis.call('HDEL', h, 'reaper')
      redis.call('ZADD', base .. ':q:' .. f[4], -(tonumber(f[6]) or 0), m)
      redis.call('ZREM', KEYS[1], id)
      n = n + 1
    end
  end
end
return n
"
);

/// KEYS: leases, stats. ARGV: key base (`{prefix}`), instance, lease length (ms). Lease ends
/// are compared with the Redis server's clock.
/// Adopts the running tasks whose lease ran out: each is leased anew, for a whole lease, to
/// this instance as its `reaper`, which alone may end the lost attempt now (`FINISH`) with
/// the verdict of the retry rule; the task's `instance` and attempt count stay. Should the
/// reaper not write it in time, the lease runs out again and another reap adopts it. A lease
/// whose task is not running any more (or has no type or attempt count) is dropped. When no
/// instance has reaped for half a lease (Redis was away, or every instance was), every lease
/// instead moves on by that gap: their holders could not renew meanwhile.
/// Returns per adopted task: id, type, attempts, max_retries, instance, worker_id ('' when
/// missing).
pub(super) const REAP: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[3])
local last = tonumber(redis.call('HGET', KEYS[2], 'reaped_at') or '0') or 0
redis.call('HSET', KEYS[2], 'reaped_at', tostring(now))
if last > 0 and now - last > lease / 2 then
  local gap = now - last
  local all = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
  for i = 1, #all, 2 do redis.call('ZADD', KEYS[1], tonumber(all[i + 1]) + gap, all[i]) end
  return {}
end
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', tostring(now), 'LIMIT', 0, 500)
local lease_end = tostring(now + lease)
local out = {}
for _, id in ipairs(ids) do
  local h = ARGV[1] .. ':t:' .. id
  local f = redis.call('HMGET', h, 'status', 'type', 'attempts', 'max_retries', 'instance', 'worker_id')
  if f[1] == 'running' and f[2] and tonumber(f[3]) then
    redis.call('HSET', h, 'reaper', ARGV[2])
    redis.call('ZADD', KEYS[1], lease_end, id)
    local n = #out
    out[n + 1] = id
    out[n + 2] = f[2]
    out[n + 3] = f[3]
    out[n + 4] = f[4] or ''
    out[n + 5] = f[5] or ''
    out[n + 6] = f[6] or ''
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
";

/// KEYS: task, leases. ARGV: id, now, key base, done channel, cancel channel, record ttl.
/// Returns `cancelled:<previous status>`, the status of a task that already ended, or nil.
pub(super) const CANCEL: &str = r"
local f = redis.call('HMGET', KEYS[1], 'status', 'type', 'member')
if not f[1] then return false end
if f[1] == 'queued' then
  redis.call('ZREM', ARGV[3] .. ':q:' .. (f[2] or ''), f[3] or '')
  redis.call('ZREM', ARGV[3] .. ':delayed:' .. (f[2] or ''), ARGV[1])
elseif f[1] == 'running' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('PUBLISH', ARGV[5], ARGV[1])
else
  return f[1]
end
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished_at', ARGV[2], 'error', 'cancelled')
redis.call('HDEL', KEYS[1], 'reaper')
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('PUBLISH', ARGV[4], ARGV[1])
return 'cancelled:' .. f[1]
";

/// KEYS: task. ARGV: id, key base, wake channel, new queue member without its time (the
/// Redis server's, as in ENQUEUE).
/// Moves a dead-lettered task back to its queue with fresh attempts. Returns `{'queued'}`,
/// `{'not_dead', status, type}` for a task that is not in its type's dead-letter list, or nil.
pub(super) const REQUEUE: &str = r"
local f = redis.call('HMGET', KEYS[1], 'status', 'type', 'priority')
if not f[1] or not f[2] then return false end
if redis.call('LREM', ARGV[2] .. ':dead:' .. f[2], 0, ARGV[1]) == 0 then return {'not_dead', f[1], f[2]} end
local t = redis.call('TIME')
local m = string.format('%013d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) .. ARGV[4]
redis.call('HSET', KEYS[1], 'status', 'queued', 'attempts', '0', 'member', m)
redis.call('HDEL', KEYS[1], 'finished_at', 'result', 'started_at', 'progress')
redis.call('PERSIST', KEYS[1])
redis.call('ZADD', ARGV[2] .. ':q:' .. f[2], -(tonumber(f[3]) or 0), m)
redis.call('PUBLISH', ARGV[3], f[2])
return {'queued'}
";

/// KEYS: task. Marks an existing task as watched by everyone: its end is announced on the
/// done channel whoever ends it.
pub(super) const ANNOUNCE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'watcher', '*') end
";

/// KEYS: task. ARGV: progress JSON, worker id. Stores a running task's progress and the worker
/// that reports it (never creates a record). A report that arrives once the attempt ended
/// changes nothing: the end wrote the attempt's last progress itself.
pub(super) const PROGRESS: &str = r"
if redis.call('HGET', KEYS[1], 'status') == 'running' then
  redis.call('HSET', KEYS[1], 'progress', ARGV[1], 'worker_id', ARGV[2])
end
";
