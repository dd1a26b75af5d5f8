"""The worker side: workerpool's JSON-lines protocol over stdin/stdout.

The pool writes one JSON object per line on the worker's stdin:

* ``{"id", "type", "data", "attempt"}``: a task;
* ``{"ping": N}``: a health check, answered ``{"pong": N}``.

and reads the worker's answers on its stdout: any number of
``{"id", "progress", "stage"}``, then ``{"id", "result"}`` or
``{"id", "error", "retryable"}``.

A reader thread takes the lines off stdin, so pings are answered while a handler runs;
handlers run one at a time on the main thread, in the order their tasks came.
"""

import asyncio
import inspect
import json
import os
import queue
import signal
import sys
import threading
import traceback

__all__ = ["Worker", "Context", "Retryable", "Fatal"]


class Retryable(Exception):
    """The task failed and running it again may succeed: the pool retries it."""


class Fatal(Exception):
    """The task failed and running it again would fail the same way: no retry."""


class _Protocol:
    """The real stdout, kept for protocol lines: one line per write, flushed, under a lock."""

    def __init__(self, stream):
        self._stream = stream
        self._lock = threading.Lock()
        self.broken = False

    def send(self, message):
        """Writes one message; raises TypeError/ValueError when it is not JSON."""
        line = json.dumps(message, allow_nan=False, separators=(",", ":")) + "\n"
        self.send_line(line.encode("utf-8"))

    def send_line(self, data):
        with self._lock:
            if self.broken:
                return
            try:
                self._stream.write(data)
                self._stream.flush()
            except (BrokenPipeError, OSError, ValueError):
                # The pool is gone: nobody reads answers any more.
                self.broken = True


_taken = None
_taken_lock = threading.Lock()


def _take_stdout():
    """Keeps the real stdout for the protocol and points everything else at stderr.

    File descriptor 1 is duplicated for the protocol, then made a copy of stderr, so that a
    ``print()``, a C library's write to fd 1 and a child process's output all land on stderr
    (which the pool logs) instead of corrupting the protocol. ``sys.stdout`` becomes
    ``sys.stderr``. Done once per process.
    """
    global _taken
    with _taken_lock:
        if _taken is not None:
            return _taken
        try:
            sys.stdout.flush()
        except Exception:  # noqa: BLE001 - a closed or odd stdout: nothing to flush
            pass
        try:
            fd = os.dup(1)
            stream = os.fdopen(fd, "wb", buffering=0)
            os.dup2(2, 1)
        except OSError:
            # No usable fd 1 (an embedded interpreter): write through sys.stdout's buffer.
            stream = getattr(sys.__stdout__, "buffer", sys.__stdout__)
        sys.stdout = sys.stderr
        _taken = _Protocol(stream)
        return _taken


def _log(message):
    try:
        sys.stderr.write(message.rstrip("\n") + "\n")
        sys.stderr.flush()
    except Exception:  # noqa: BLE001 - stderr gone: nothing left to tell
        pass


class Context:
    """One task as the handler sees it."""

    __slots__ = ("id", "type", "data", "attempt", "_protocol")

    def __init__(self, task_id, task_type, data, attempt, protocol):
        #: The task id the pool assigned.
        self.id = task_id
        #: The task type, e.g. ``"text_processing"``.
        self.type = task_type
        #: The task's input: any JSON value (``None`` when the task has none).
        self.data = data
        #: Which attempt this is, from 1.
        self.attempt = attempt
        self._protocol = protocol

    def progress(self, percent, stage=None):
        """Reports progress (0 to 100, clamped and rounded) and, optionally, a stage name.

        It reaches ``/api/tasks/{id}/events`` as a ``progress`` event.
        """
        try:
            value = int(round(float(percent)))
        except (TypeError, ValueError):
            raise TypeError(f"progress must be a number from 0 to 100, not {percent!r}") from None
        value = max(0, min(100, value))
        message = {"id": self.id, "progress": value}
        if stage is not None:
            message["stage"] = str(stage)
        self._protocol.send(message)

    def __repr__(self):
        return f"Context(id={self.id!r}, type={self.type!r}, attempt={self.attempt})"


_EOF = object()


def _lines_of_fd(fd):
    """The lines of a file descriptor (bytes, newline included), read in chunks."""
    parts = []
    while True:
        try:
            chunk = os.read(fd, 1 << 20)
        except InterruptedError:
            continue
        if not chunk:
            break
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                if start < len(chunk):
                    parts.append(chunk[start:])
                break
            parts.append(chunk[start : end + 1])
            yield b"".join(parts)
            parts = []
            start = end + 1
    if parts:
        yield b"".join(parts)


class Worker:
    """A process worker: register handlers with :meth:`task`, then call :meth:`run`.

    Creating a ``Worker`` takes stdout for the protocol at once: from then on ``print()``
    writes to stderr.
    """

    def __init__(self):
        self._handlers = {}
        self._fallback = None
        self._setups = []
        self._teardowns = []
        self._protocol = _take_stdout()
        self._stopping = False
        self._terms = 0
        self._busy = False
        self._loop = None

    # Registration -------------------------------------------------------------------------

    def task(self, *types):
        """Decorates the handler of the named task types (none named: every other type).

        The handler takes one argument, a :class:`Context`, may be ``async def``, and returns
        the task's result (anything ``json.dumps`` takes).
        """
        if len(types) == 1 and callable(types[0]) and not isinstance(types[0], str):
            # Used bare: @worker.task
            self._fallback = types[0]
            return types[0]

        def register(fn):
            if not callable(fn):
                raise TypeError("a task handler must be callable")
            if not types:
                self._fallback = fn
            for name in types:
                if not isinstance(name, str) or not name:
                    raise TypeError(f"a task type is a non-empty string, not {name!r}")
                self._handlers[name] = fn
            return fn

        return register

    def setup(self, fn):
        """Decorates a function run once per process before the first task (no arguments)."""
        self._setups.append(fn)
        return fn

    def teardown(self, fn):
        """Decorates a function run once when the worker exits (no arguments)."""
        self._teardowns.append(fn)
        return fn

    # Running ------------------------------------------------------------------------------

    def run(self):
        """Serves tasks until stdin ends or SIGTERM, then runs the teardowns and exits 0.

        The setup functions run first; until they return, pings wait unanswered (the pool
        counts the worker as starting: raise the type's ``start_timeout_ms`` for a slow
        model load). A setup that raises exits the process with code 1.
        """
        self._install_signals()
        try:
            for fn in self._setups:
                self._call(fn)
        except BaseException:  # noqa: BLE001 - reported, then the process exits
            _log("workerpool_worker: setup failed:\n" + traceback.format_exc())
            self._run_teardowns()
            self._close_loop()
            sys.stderr.flush()
            os._exit(1)
        lines = queue.Queue()
        reader = threading.Thread(target=self._read, args=(lines,), name="workerpool-reader", daemon=True)
        reader.start()
        try:
            while not self._stopping:
                try:
                    item = lines.get(timeout=0.1)
                except queue.Empty:
                    continue
                if item is _EOF:
                    break
                self._busy = True
                try:
                    self._handle(item)
                finally:
                    self._busy = False
        finally:
            self._run_teardowns()
            self._close_loop()
        try:
            sys.stderr.flush()
        except Exception:  # noqa: BLE001
            pass
        sys.exit(0)

    def _install_signals(self):
        if threading.current_thread() is not threading.main_thread():
            return

        def on_term(signum, frame):
            self._terms += 1
            if self._terms > 1:
                # A second SIGTERM: leave at once.
                os._exit(128 + signum)
            self._stopping = True
            if self._busy:
                _log("workerpool_worker: SIGTERM: finishing the current task, then exiting")

        signal.signal(signal.SIGTERM, on_term)

    def _read(self, lines):
        """The reader thread: pings are answered here, tasks queued in order.

        It reads fd 0 with os.read rather than through sys.stdin, so that no buffer lock is
        held by this thread when the interpreter exits with it still blocked in a read.
        """
        try:
            fd = sys.stdin.fileno()
        except (AttributeError, OSError, ValueError):
            fd = None
        try:
            for raw in (_lines_of_fd(fd) if fd is not None else sys.stdin):
                if isinstance(raw, bytes):
                    raw = raw.decode("utf-8", errors="replace")
                raw = raw.strip()
                if not raw:
                    continue
                try:
                    msg = json.loads(raw)
                except ValueError as e:
                    _log(f"workerpool_worker: a line that is not JSON ({e}): {raw[:200]}")
                    continue
                if isinstance(msg, dict) and "ping" in msg and "id" not in msg:
                    self._protocol.send({"pong": msg["ping"]})
                    continue
                if not isinstance(msg, dict) or not isinstance(msg.get("id"), str):
                    _log(f"workerpool_worker: a line that is neither a ping nor a task: {raw[:200]}")
                    continue
                lines.put(msg)
        except Exception:  # noqa: BLE001 - stdin broke: treat as its end
            _log("workerpool_worker: reading stdin failed:\n" + traceback.format_exc())
        finally:
            lines.put(_EOF)

    def _handle(self, msg):
        task_id = msg["id"]
        task_type = msg.get("type")
        attempt = msg.get("attempt", 1)
        if not isinstance(attempt, int) or isinstance(attempt, bool):
            attempt = 1
        handler = self._handlers.get(task_type, self._fallback)
        if handler is None:
            self._fail(task_id, f"no handler for task type {task_type!r}", False)
            return
        ctx = Context(task_id, task_type, msg.get("data"), attempt, self._protocol)
        try:
            result = self._call(handler, ctx)
        except Fatal as e:
            self._fail(task_id, str(e) or "fatal error", False)
            return
        except Retryable as e:
            self._fail(task_id, str(e) or "retryable error", True)
            return
        except Exception as e:  # noqa: BLE001 - any other failure is retryable
            _log(f"workerpool_worker: task {task_id} ({task_type}) raised:\n" + traceback.format_exc())
            message = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            self._fail(task_id, message, True)
            return
        try:
            self._protocol.send({"id": task_id, "result": result})
        except (TypeError, ValueError, OverflowError, RecursionError) as e:
            self._fail(task_id, f"the result is not JSON-serialisable: {e}", False)

    def _fail(self, task_id, message, retryable):
        self._protocol.send({"id": task_id, "error": message, "retryable": bool(retryable)})

    def _call(self, fn, *args):
        """Calls a function, running it to completion on the worker's event loop if async."""
        if inspect.iscoroutinefunction(fn):
            return self._event_loop().run_until_complete(fn(*args))
        value = fn(*args)
        if inspect.isawaitable(value):
            return self._event_loop().run_until_complete(value)
        return value

    def _event_loop(self):
        # One loop for the whole process, so that what setup made async stays usable.
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
        return self._loop

    def _close_loop(self):
        if self._loop is not None:
            try:
                self._loop.close()
            except Exception:  # noqa: BLE001
                pass
            self._loop = None

    def _run_teardowns(self):
        for fn in self._teardowns:
            try:
                self._call(fn)
            except Exception:  # noqa: BLE001 - every teardown runs
                _log("workerpool_worker: teardown failed:\n" + traceback.format_exc())
