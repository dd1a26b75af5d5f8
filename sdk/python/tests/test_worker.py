"""workerpool_worker against the real server: `workerpool serve` (binary from WORKERPOOL_BIN)
runs types whose command is a worker script built on the library; the tests drive it with the
library's Client. A few tests also run a worker script directly over pipes, to see the exact
protocol lines (pong order, exit codes). Every wait is bounded.
"""
import json
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
REPO = HERE.parent.parent.parent
WORKER = HERE / "workers" / "lib_worker.py"
EXAMPLE = REPO / "examples" / "gpu_model_worker.py"

sys.path.insert(0, str(SRC))
from workerpool_worker import Client, ClientError  # noqa: E402


def _toml_list(items):
    return "[" + ", ".join(json.dumps(str(i)) for i in items) + "]"


def _type(name, command, **keys):
    table = {"max_concurrent": 1, "max_retries": 0, "retry_delay_ms": 20, "timeout_ms": 20000, "queue_size": 50}
    table.update(keys)
    lines = [f"[types.{name}]", f"command = {_toml_list(command)}"]
    for k, v in table.items():
        lines.append(f"{k} = {json.dumps(v) if not isinstance(v, bool) else str(v).lower()}")
    return "\n".join(lines) + "\n"


def wait_for(limit, cond, every=0.02):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(every)
    return cond()


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Server:
    """`workerpool serve --bind 127.0.0.1:0 --config <toml>`; its stderr is kept."""

    def __init__(self, config, env=None):
        binary = os.environ.get("WORKERPOOL_BIN")
        if not binary:
            pytest.skip("WORKERPOOL_BIN is not set (tests/sdk_python.rs sets it)")
        fd, self.config_path = tempfile.mkstemp(prefix="wp-sdk-py-", suffix=".toml")
        with os.fdopen(fd, "w") as f:
            f.write(config)
        child_env = {k: v for k, v in os.environ.items() if k not in _SERVER_ENV_DROP}
        child_env.update(RUST_LOG="info", PYTHONPATH=str(SRC), PYTHONUNBUFFERED="1")
        child_env.update(env or {})
        self.proc = subprocess.Popen(
            [binary, "serve", "--bind", "127.0.0.1:0", "--config", self.config_path],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=child_env,
        )
        self.log = []
        found = queue.Queue()

        def pump():
            for raw in self.proc.stderr:
                line = raw.decode("utf-8", errors="replace").rstrip("\n")
                if "listening on " in line:
                    found.put(line.split("listening on ", 1)[1].split('"')[0].strip())
                self.log.append(line)

        threading.Thread(target=pump, daemon=True).start()
        try:
            self.base = found.get(timeout=30)
        except queue.Empty:
            self.stop()
            raise AssertionError("the server did not start:\n" + "\n".join(self.log))
        self.client = Client(self.base, timeout=60)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        try:
            os.unlink(self.config_path)
        except OSError:
            pass

    def workers(self, task_type):
        return [w for w in self.client.status()["workers"] if w["task_type"] == task_type]


_SERVER_ENV_DROP = {
    "WORKERPOOL_API_TOKEN", "MAX_WORKERS", "WORKER_POOL_SIZE", "LOG_FORMAT", "REDIS_URL",
    "REDIS_HOST", "REDIS_PASSWORD", "INSTANCE_ID", "WORKERPOOL_PROTECT_READS", "WORKERPOOL_READ_TOKEN",
    "WORKERPOOL_CA_FILE",
}


@pytest.fixture(scope="module")
def setup_log(tmp_path_factory):
    return tmp_path_factory.mktemp("sdk") / "setup.log"


@pytest.fixture(scope="module")
def server(setup_log):
    cmd = [sys.executable, str(WORKER), str(setup_log)]
    types = [
        _type("sdk_progress", cmd),
        _type("sdk_fatal", cmd, max_retries=3),
        _type("sdk_retry", cmd, max_retries=2),
        _type("sdk_error", cmd, max_retries=1),
        _type("sdk_print", cmd),
        _type("sdk_badresult", cmd, max_retries=3),
        _type("sdk_slow", cmd, max_concurrent=2),
        _type("sdk_ping", cmd),
        _type("sdk_term", cmd),
        _type("sdk_setup", cmd),
        _type("image_generation", [sys.executable, str(EXAMPLE)], gpu_required=False),
    ]
    config = (
        "[pool]\nmax_workers = 16\nmin_workers = 0\nhealth_check_interval_ms = 200\n"
        "resource_monitor_interval_ms = 500\ngraceful_shutdown_timeout_ms = 3000\n\n" + "".join(types)
    )
    srv = Server(config)
    yield srv
    srv.stop()


def setup_lines(path, pid):
    try:
        text = path.read_text()
    except OSError:
        return []
    return [line for line in text.splitlines() if line.endswith(f" {pid}")]


# Through the server ---------------------------------------------------------------------


def test_progress_reaches_the_event_stream(server):
    client = server.client
    task_id = client.submit("sdk_progress", {"steps": 4, "step_ms": 300})
    events = list(client.watch(task_id, timeout=30))
    names = [e for e, _ in events]
    assert names[0] == "status" and names[-1] == "result", names
    progress = [(d["progress"], d["stage"]) for e, d in events if e == "progress"]
    assert progress == [(25, "step 1/4"), (50, "step 2/4"), (75, "step 3/4"), (100, "step 4/4")], events
    final = events[-1][1]
    assert final["status"] == "completed", final
    assert final["result"]["steps"] == 4
    assert final["progress"] == {"progress": 100, "stage": "step 4/4"}
    # The record agrees.
    assert client.get(task_id)["status"] == "completed"


def test_a_fatal_error_fails_once(server):
    record = server.client.execute("sdk_fatal", {})
    assert (record["status"], record["attempts"]) == ("failed", 1), record
    assert record["error"] == "bad input on attempt 1", record


def test_a_retryable_error_is_retried_until_dead(server):
    record = server.client.execute("sdk_retry", {})
    assert record["max_retries"] == 2, record
    assert (record["status"], record["attempts"]) == ("dead", 3), record
    assert "busy on attempt 3" in record["error"], record


def test_any_other_exception_is_retryable_with_its_type(server):
    record = server.client.execute("sdk_error", {})
    assert record["attempts"] == 2, record
    assert record["status"] in ("dead", "failed"), record
    assert "ValueError: odd value on attempt 2" in record["error"], record


def test_a_stray_print_does_not_break_the_task(server):
    first = server.client.execute("sdk_print", {"hello": "world"})
    assert first["status"] == "completed", first
    assert first["result"]["echoed"] == {"hello": "world"}
    # The worker lives on: the next task runs on the same process.
    second = server.client.execute("sdk_print", {"n": 2})
    assert second["status"] == "completed", second
    assert second["result"]["pid"] == first["result"]["pid"]
    # What it printed went to stderr, which the server logs.
    assert wait_for(5, lambda: any("a stray print from the handler" in l for l in server.log)), server.log[-40:]


def test_a_result_that_is_not_json_fails_the_task_not_the_process(server):
    bad = server.client.execute("sdk_badresult", {})
    assert (bad["status"], bad["attempts"]) == ("failed", 1), bad
    assert "not JSON-serialisable" in bad["error"], bad
    good = server.client.execute("sdk_badresult", {"ok": True})
    assert good["status"] == "completed", good
    assert good["result"]["pid"] == bad["worker_pid"], (bad, good)


def test_pings_are_answered_while_a_handler_runs(server):
    # health_check_interval_ms = 200: idle workers are pinged every 200 ms and replaced
    # without a pong within 250 ms. A task may be sent right after a ping: the pong must
    # come while the 2-second handler runs, or the worker is replaced once idle.
    client = server.client
    first = client.execute("sdk_ping", {"ms": 0})
    pid = first["result"]["pid"]
    time.sleep(0.6)
    for _ in range(2):
        slow = client.execute("sdk_ping", {"ms": 2000})
        assert slow["status"] == "completed", slow
        assert slow["result"]["pid"] == pid, slow
        time.sleep(0.6)  # idle: a few more pings
    last = client.execute("sdk_ping", {"ms": 0})
    assert last["result"]["pid"] == pid, last
    assert last["result"]["setups"] == 1
    workers = server.workers("sdk_ping")
    assert [w["pid"] for w in workers] == [pid], workers
    assert not [l for l in server.log if "unresponsive" in l and "sdk_ping" in l], server.log


def test_sigterm_lets_the_running_task_finish(server, setup_log):
    client = server.client
    pid = client.execute("sdk_term", {"ms": 0})["result"]["pid"]
    task_id = client.submit("sdk_term", {"ms": 1500})
    running = wait_for(10, lambda: client.get(task_id)["status"] == "running")
    assert running, client.get(task_id)
    time.sleep(0.3)  # inside the handler's sleep
    os.kill(pid, signal.SIGTERM)
    done = wait_for(15, lambda: (lambda r: r if r["status"] not in ("queued", "running") else None)(client.get(task_id)))
    assert done, client.get(task_id)
    assert (done["status"], done["attempts"]) == ("completed", 1), done
    assert done["result"]["pid"] == pid, done
    # It then ran its teardown and exited.
    assert wait_for(10, lambda: not alive(pid)), f"worker {pid} still runs"
    assert wait_for(5, lambda: any(l.startswith("teardown") for l in setup_lines(setup_log, pid))), setup_lines(
        setup_log, pid
    )


def test_setup_runs_once_for_many_tasks(server, setup_log):
    results = [server.client.execute("sdk_setup", {"ms": 0}) for _ in range(6)]
    assert all(r["status"] == "completed" for r in results), results
    pids = {r["result"]["pid"] for r in results}
    assert len(pids) == 1, results
    assert [r["result"]["setups"] for r in results] == [1] * 6
    tasks = [r["result"]["tasks"] for r in results]
    assert tasks == sorted(tasks) and len(set(tasks)) == 6, tasks
    pid = pids.pop()
    assert [l for l in setup_lines(setup_log, pid) if l.startswith("setup")] == [f"setup {pid}"]


def test_client_submit_get_cancel_and_errors(server):
    client = server.client
    task_id = client.submit("sdk_slow", {"ms": 20000})
    assert wait_for(10, lambda: client.get(task_id)["status"] == "running"), client.get(task_id)
    cancelled = client.cancel(task_id)
    assert cancelled["status"] == "cancelled", cancelled
    with pytest.raises(ClientError) as e:
        client.cancel(task_id)
    assert e.value.status == 409
    with pytest.raises(ClientError) as e:
        client.get("no-such-task")
    assert e.value.status == 404
    with pytest.raises(ClientError) as e:
        client.execute("no_such_type", {})
    assert e.value.status == 404
    # A finished task's stream gives its result once.
    done = client.execute("sdk_slow", {"ms": 0})
    assert [e for e, _ in client.watch(done["id"], timeout=10)] == ["result"]


def test_the_gpu_model_example_loads_once_and_serves_every_task(server):
    client = server.client
    task_id = client.submit("image_generation", {"prompt": "a red fox", "steps": 4})
    events = list(client.watch(task_id, timeout=30))
    stages = [d["stage"] for e, d in events if e == "progress"]
    assert "denoising 4/4" in stages, events
    first = events[-1][1]
    assert first["status"] == "completed", first
    again = [client.execute("image_generation", {"prompt": p, "steps": 2}) for p in ("a red fox", "a blue whale")]
    for r in [first] + again:
        assert r["status"] == "completed", r
        assert r["result"]["loads"] == 1, r
        assert r["result"]["pid"] == first["result"]["pid"], r
        assert r["result"]["model_id"] == first["result"]["model_id"], r
        assert len(r["result"]["embedding"]) == 8
    # The same prompt gives the same embedding (the model is deterministic, whatever the steps).
    assert again[0]["result"]["embedding"] == first["result"]["embedding"]
    assert again[1]["result"]["embedding"] != first["result"]["embedding"]
    bad = client.execute("image_generation", {"prompt": ""})
    assert (bad["status"], bad["attempts"]) == ("failed", 1), bad


# Over pipes, without the server ----------------------------------------------------------


class Direct:
    """A worker script run over pipes; its stdout lines are read on a thread."""

    def __init__(self, script, *args, env=None):
        child_env = dict(os.environ, PYTHONPATH=str(SRC), PYTHONUNBUFFERED="1")
        child_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, str(script), *map(str, args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=child_env,
        )
        self.lines = queue.Queue()

        def pump():
            for raw in self.proc.stdout:
                self.lines.put((time.monotonic(), json.loads(raw)))

        threading.Thread(target=pump, daemon=True).start()

    def send(self, message):
        self.proc.stdin.write((json.dumps(message) + "\n").encode())
        self.proc.stdin.flush()

    def read(self, limit=10):
        try:
            return self.lines.get(timeout=limit)
        except queue.Empty:
            self.kill()
            raise AssertionError("no line from the worker: " + self.proc.stderr.read().decode(errors="replace"))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


def test_direct_pong_comes_during_a_running_handler(tmp_path):
    w = Direct(WORKER, tmp_path / "log")
    try:
        w.send({"ping": 1})
        assert w.read()[1] == {"pong": 1}
        started = time.monotonic()
        w.send({"id": "t1", "type": "sdk_slow", "data": {"ms": 2000}, "attempt": 1})
        time.sleep(0.3)
        w.send({"ping": 2})
        at, pong = w.read()
        assert pong == {"pong": 2}
        assert at - started < 1.5, "the pong waited for the handler"
        at, result = w.read()
        assert result["id"] == "t1" and "result" in result, result
        assert at - started >= 2.0
        w.proc.stdin.close()  # EOF: the worker exits 0
        assert w.proc.wait(timeout=10) == 0
    finally:
        w.kill()


def test_direct_sigterm_finishes_the_task_then_exits_zero_and_a_second_exits_at_once(tmp_path):
    log = tmp_path / "log"
    w = Direct(WORKER, log)
    try:
        w.send({"ping": 1})
        assert w.read()[1] == {"pong": 1}
        w.send({"id": "t1", "type": "sdk_slow", "data": {"ms": 1000}, "attempt": 1})
        w.send({"id": "t2", "type": "sdk_slow", "data": {"ms": 0}, "attempt": 1})
        time.sleep(0.3)
        w.proc.send_signal(signal.SIGTERM)
        _, result = w.read()
        assert result["id"] == "t1" and result["result"]["attempt"] == 1, result
        assert w.proc.wait(timeout=10) == 0
        assert w.lines.empty(), "the queued task was not started after SIGTERM"
        assert [l.split()[0] for l in log.read_text().splitlines()] == ["setup", "teardown"]
    finally:
        w.kill()
    w = Direct(WORKER, log)
    try:
        w.send({"ping": 1})
        assert w.read()[1] == {"pong": 1}
        w.send({"id": "t1", "type": "sdk_slow", "data": {"ms": 20000}, "attempt": 1})
        time.sleep(0.3)
        w.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        started = time.monotonic()
        w.proc.send_signal(signal.SIGTERM)
        code = w.proc.wait(timeout=5)
        assert code != 0 and time.monotonic() - started < 2, code
    finally:
        w.kill()


def test_direct_queued_tasks_run_in_order_and_stdout_is_only_protocol(tmp_path):
    w = Direct(WORKER, tmp_path / "log")
    try:
        for n in range(3):
            w.send({"id": f"p{n}", "type": "sdk_print", "data": {"n": n}, "attempt": 1})
        w.send({"id": "bad", "type": "no_handler", "data": None, "attempt": 1})
        w.proc.stdin.close()
        got = [w.read()[1] for _ in range(4)]
        assert [g["id"] for g in got] == ["p0", "p1", "p2", "bad"], got
        assert [g["result"]["echoed"]["n"] for g in got[:3]] == [0, 1, 2]
        assert got[3] == {"id": "bad", "error": "no handler for task type 'no_handler'", "retryable": False}
        assert w.proc.wait(timeout=10) == 0
        assert w.lines.empty()
        assert "a stray print from the handler" in w.proc.stderr.read().decode()
    finally:
        w.kill()


def test_the_package_imports_without_taking_stdout():
    out = subprocess.run(
        [sys.executable, "-c", "import workerpool_worker as w, sys; print(sorted(w.__all__)); print(sys.stdout is sys.__stdout__)"],
        env=dict(os.environ, PYTHONPATH=str(SRC)),
        capture_output=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert re.findall(r"'(\w+)'", out.stdout.decode().splitlines()[0]) == sorted(
        ["Worker", "Context", "Retryable", "Fatal", "Client", "ClientError"]
    )
    assert out.stdout.decode().splitlines()[1] == "True"
