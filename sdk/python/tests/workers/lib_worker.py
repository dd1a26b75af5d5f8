"""A worker built on workerpool_worker, for the tests: one handler per behaviour under test.

Usage: python lib_worker.py LOGFILE  (setup and teardown append "setup PID" / "teardown PID").
"""
import asyncio
import os
import subprocess
import sys
import time

from workerpool_worker import Fatal, Retryable, Worker

LOG = sys.argv[1] if len(sys.argv) > 1 else os.devnull
worker = Worker()
state = {"setups": 0, "tasks": 0}


def note(line):
    with open(LOG, "a") as f:
        f.write(f"{line} {os.getpid()}\n")


@worker.setup
def load():
    state["setups"] += 1
    state["cuda"] = os.environ.get("CUDA_VISIBLE_DEVICES")
    print("setup: this line goes to stderr")
    note("setup")


@worker.teardown
def unload():
    note("teardown")


def base(ctx):
    state["tasks"] += 1
    return {"pid": os.getpid(), "setups": state["setups"], "tasks": state["tasks"], "attempt": ctx.attempt}


@worker.task("sdk_progress")
async def progress(ctx):
    steps = int(ctx.data.get("steps", 4))
    for i in range(1, steps + 1):
        await asyncio.sleep(ctx.data.get("step_ms", 300) / 1000)
        ctx.progress(100 * i / steps, f"step {i}/{steps}")
    return dict(base(ctx), steps=steps)


@worker.task("sdk_fatal")
def fatal(ctx):
    raise Fatal(f"bad input on attempt {ctx.attempt}")


@worker.task("sdk_retry")
def retry(ctx):
    raise Retryable(f"busy on attempt {ctx.attempt}")


@worker.task("sdk_error")
def error(ctx):
    raise ValueError(f"odd value on attempt {ctx.attempt}")


@worker.task("sdk_print")
def noisy(ctx):
    print("a stray print from the handler")
    print("{\"id\": \"not-a-protocol-line\"}", flush=True)
    sys.stdout.write("no newline at the end")
    os.write(1, b"raw bytes on fd 1\n")
    subprocess.run(["echo", "a child process writes to its stdout"], check=True)
    return dict(base(ctx), echoed=ctx.data)


@worker.task("sdk_badresult")
def bad_result(ctx):
    if ctx.data.get("ok"):
        return base(ctx)
    return {"pid": os.getpid(), "value": object()}


@worker.task("sdk_slow", "sdk_ping", "sdk_term", "sdk_setup")
def slow(ctx):
    time.sleep(ctx.data.get("ms", 0) / 1000)
    return base(ctx)


worker.run()
