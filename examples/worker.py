#!/usr/bin/env python3
"""A process worker in Python: the JSON-lines protocol of workerpool (CONTRACT section 4).

Reads one JSON object per line on stdin and answers on stdout:
  {"ping": N}                                  -> {"pong": N}
  {"id", "type", "data", "attempt"}            -> progress lines, then {"id", "result"} or
                                                  {"id", "error", "retryable"}
"""
import json
import os
import sys


def handle(task):
    words = str(task.get("data", {}).get("text", "")).split()
    yield {"id": task["id"], "progress": 50, "stage": "counting"}
    if not words:
        yield {"id": task["id"], "error": "no text to count", "retryable": False}
        return
    yield {"id": task["id"], "result": {"words": len(words), "longest": max(words, key=len), "pid": os.getpid()}}


def main():
    for line in sys.stdin:
        try:
            msg = json.loads(line)
        except ValueError as e:
            print(f"worker.py: bad line: {e}", file=sys.stderr)
            continue
        answers = [{"pong": msg["ping"]}] if "ping" in msg else handle(msg)
        for answer in answers:
            sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
