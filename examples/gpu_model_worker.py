#!/usr/bin/env python3
"""A GPU-style workerpool worker written with the workerpool_worker library (sdk/python).

The "model" is loaded once per process in @worker.setup, on the GPUs the pool placed this
worker on (CUDA_VISIBLE_DEVICES; empty or unset: the CPU), and reused by every task. Here it
is a small deterministic embedding model built from the standard library, so the example
runs anywhere; a real worker would load torch weights the same way:

    @worker.setup
    def load():
        MODEL["net"] = torch.load("weights.pt").to("cuda").eval()

Configure a type that runs it (config TOML, CONTRACT section 3):

    [types.image_generation]
    gpu_required = true
    gpus_per_worker = 1
    start_timeout_ms = 120000      # pings wait until setup has loaded the model
    command = ["python3", "examples/gpu_model_worker.py"]

with `pip install sdk/python` (or PYTHONPATH=sdk/python/src) for the library. A task:

    {"type": "image_generation", "data": {"prompt": "a red fox", "steps": 4}}

answers {"prompt", "embedding" (8 numbers), "norm", "device", "model_id", "loads", "pid"}.
Types it serves: MODEL_TASK_TYPES (comma-separated; default image_generation).
"""
import hashlib
import math
import os
import random
import time

from workerpool_worker import Fatal, Worker

worker = Worker()
MODEL = {}
DIM = 8
BUCKETS = 257


@worker.setup
def load_model():
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    devices = [d for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    started = time.monotonic()
    rng = random.Random(1234)  # fixed "weights": every worker builds the same model
    weights = [[rng.gauss(0.0, 1.0) for _ in range(DIM)] for _ in range(BUCKETS)]
    MODEL.update(
        weights=weights,
        device=f"cuda ({','.join(devices)})" if devices else "cpu",
        model_id=hashlib.sha256(repr(weights[:4]).encode()).hexdigest()[:12],
        loads=MODEL.get("loads", 0) + 1,
        load_ms=round((time.monotonic() - started) * 1000, 1),
    )
    print(f"model {MODEL['model_id']} loaded on {MODEL['device']} in {MODEL['load_ms']} ms")


@worker.teardown
def unload_model():
    print(f"unloading model {MODEL.get('model_id')}")
    MODEL.clear()


def embed(text, steps, ctx):
    vector = [0.0] * DIM
    grams = [text[i : i + 3] for i in range(max(1, len(text) - 2))]
    for step in range(1, steps + 1):
        for gram in grams:
            row = MODEL["weights"][int(hashlib.md5(gram.encode()).hexdigest(), 16) % BUCKETS]
            for i in range(DIM):
                vector[i] += row[i] / steps
        ctx.progress(100 * step / steps, f"denoising {step}/{steps}")
    return vector


def generate(ctx):
    data = ctx.data if isinstance(ctx.data, dict) else {}
    prompt = data.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise Fatal("data.prompt must be a non-empty string")
    steps = data.get("steps", 4)
    if not isinstance(steps, int) or not 1 <= steps <= 100:
        raise Fatal("data.steps must be an integer from 1 to 100")
    ctx.progress(0, "encoding prompt")
    vector = embed(prompt, steps, ctx)
    norm = math.sqrt(sum(v * v for v in vector))
    return {
        "prompt": prompt,
        "embedding": [round(v / norm, 6) if norm else 0.0 for v in vector],
        "norm": round(norm, 6),
        "device": MODEL["device"],
        "model_id": MODEL["model_id"],
        "loads": MODEL["loads"],
        "pid": os.getpid(),
    }


for name in os.environ.get("MODEL_TASK_TYPES", "image_generation").split(","):
    if name.strip():
        worker.task(name.strip())(generate)

if __name__ == "__main__":
    worker.run()
