"""Queue a task for workerpool through Redis from Python, then read its result.

Any language can do the same: the key layout and fields are in docs/REDIS.md.
Usage: python3 redis_producer.py [REDIS_URL] [PREFIX]
"""
import json
import sys
import time
import uuid

import redis

FINAL = {"completed", "failed", "timed_out", "cancelled", "dead"}


def enqueue(r, prefix, task_type, data, priority=0, max_retries=3, timeout_ms=60_000):
    """Queues a task in one MULTI/EXEC transaction; returns its id."""
    base = "{" + prefix + "}"
    task_id = str(uuid.uuid4())
    # Equal priorities run in submission order: the member starts with the time in ms
    # (13 digits) and a 6-digit counter for tasks of the same millisecond.
    member = f"{int(time.time() * 1000):013d}{0:06d}:{task_id}"
    with r.pipeline(transaction=True) as p:
        p.hset(f"{base}:t:{task_id}", mapping={
            "id": task_id,
            "type": task_type,
            "data": json.dumps(data),
            "priority": priority,
            "max_retries": max_retries,
            "timeout": timeout_ms,
            "attempts": 0,
            "status": "queued",
            "created_at": int(time.time() * 1000),
            "member": member,
            # Ask for the end to be announced on the done channel.
            "watcher": "*",
        })
        # Higher priorities first: the score is minus the priority.
        p.zadd(f"{base}:q:{task_type}", {member: -priority})
        # Wakes idle instances at once (they also look every second).
        p.publish(f"{base}:wake", task_type)
        p.execute()
    return task_id


def wait(r, prefix, task_id, timeout_s=30.0):
    """Waits for the task to end; returns its record (a dict of its hash's fields)."""
    base = "{" + prefix + "}"
    key = f"{base}:t:{task_id}"
    done = r.pubsub(ignore_subscribe_messages=True)
    done.subscribe(f"{base}:done")  # told the id of every task that ends
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            record = r.hgetall(key)
            if record.get("status") in FINAL:
                return record
            done.get_message(timeout=1.0)
    finally:
        done.close()
    raise TimeoutError(f"task {task_id} did not end within {timeout_s} s")


def main():
    url = sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/"
    prefix = sys.argv[2] if len(sys.argv) > 2 else "workerpool"
    r = redis.Redis.from_url(url, decode_responses=True)
    task_id = enqueue(r, prefix, "text_processing", {"text": "queued from python with redis-py"}, priority=5)
    record = wait(r, prefix, task_id)
    result = json.loads(record["result"]) if record["status"] == "completed" else None
    print(json.dumps({
        "id": task_id,
        "status": record["status"],
        "attempts": int(record["attempts"]),
        "instance": record.get("instance"),
        "result": result,
        "error": record.get("error"),
    }))


if __name__ == "__main__":
    main()
