"""A small client of workerpool's REST API (docs/API.md), on urllib alone."""

import json
import os
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request

__all__ = ["Client", "ClientError"]

_TASK_OPTIONS = ("priority", "timeout", "max_retries", "delay", "wait")


class ClientError(Exception):
    """The server refused a request: ``status`` is the HTTP status, ``body`` its JSON (or text)."""

    def __init__(self, status, body):
        self.status = status
        self.body = body
        detail = body.get("error") if isinstance(body, dict) else body
        super().__init__(f"HTTP {status}: {detail}")


def _is_record(body):
    return isinstance(body, dict) and "id" in body and "status" in body


class Client:
    """Calls a workerpool server at ``url`` (``http://host:port`` or ``https://host:port``).

    ``token`` is sent as ``Authorization: Bearer`` (needed when the server runs with
    ``WORKERPOOL_API_TOKEN``; the read token ``WORKERPOOL_READ_TOKEN`` opens the reads only).
    ``ca_file`` (default: the ``WORKERPOOL_CA_FILE`` environment variable) is a PEM file of the
    certificate authorities trusted for HTTPS instead of the system's, e.g. a private CA that
    signed the server's certificate; the server's certificate and name are always verified.
    ``timeout`` bounds each request in seconds; a waited :meth:`execute` takes as long as the
    task, so give it a timeout above the task's.
    """

    def __init__(self, url, token=None, ca_file=None, timeout=300.0):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.ca_file = ca_file or os.environ.get("WORKERPOOL_CA_FILE") or None
        # A missing or unreadable CA file fails here, not at the first request.
        self._tls = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else None

    # Tasks --------------------------------------------------------------------------------

    def execute(self, type, data=None, **options):
        """Runs a task and waits for its end; returns the task record (any final status:
        ``completed``, ``failed``, ``dead``, ``timed_out``, ``cancelled``).

        Options: ``priority``, ``timeout`` (ms), ``max_retries``, ``delay`` (ms).
        Raises :class:`ClientError` when the task was not accepted (400, 404, 429, 503).
        """
        options.setdefault("wait", True)
        status, body = self._send("POST", "/api/workers/execute", self._task_body(type, data, options))
        if _is_record(body):
            return body
        raise ClientError(status, body)

    def submit(self, type, data=None, **options):
        """Queues a task without waiting; returns its id."""
        options["wait"] = False
        status, body = self._send("POST", "/api/workers/execute", self._task_body(type, data, options))
        if status == 202 and isinstance(body, dict) and "id" in body:
            return body["id"]
        raise ClientError(status, body)

    def get(self, task_id):
        """The task record now."""
        return self._expect(200, "GET", "/api/tasks/" + _quote(task_id))

    def cancel(self, task_id):
        """Cancels a waiting or running task; returns its record (status ``cancelled``)."""
        return self._expect(200, "DELETE", "/api/tasks/" + _quote(task_id))

    def watch(self, task_id, timeout=None, reconnects=5):
        """Follows a task's events: yields ``(event, data)`` pairs (``status``, ``progress``,
        then ``result`` with the final record), and ends after ``result``.

        A broken stream is reopened with ``Last-Event-ID`` (at most ``reconnects`` times in a
        row), so nothing is repeated. ``timeout`` bounds each read (the server sends a
        keep-alive every 15 s).
        """
        path = "/api/tasks/" + _quote(task_id) + "/events"
        last_id = None
        retry_ms = 3000
        failures = 0
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_id is not None:
                headers["Last-Event-ID"] = last_id
            request = self._request("GET", path, None, headers)
            try:
                response = self._open(request, timeout or self.timeout)
            except urllib.error.HTTPError as e:
                raise ClientError(e.code, _decode(e.read())) from None
            except (urllib.error.URLError, OSError) as e:
                if isinstance(getattr(e, "reason", e), ssl.SSLCertVerificationError):
                    raise  # an untrusted server stays untrusted: no retry
                failures += 1
                if failures > reconnects:
                    raise
                time.sleep(retry_ms / 1000.0)
                continue
            with response:
                if response.status == 204:
                    return  # the task ended and the last event we saw was its result
                event, data, ended = None, [], False
                try:
                    for raw in response:
                        line = raw.decode("utf-8").rstrip("\r\n")
                        if line == "":
                            if data:
                                payload = _decode("\n".join(data).encode("utf-8"))
                                failures = 0
                                yield (event or "message", payload)
                                if event == "result":
                                    return
                            event, data = None, []
                            continue
                        if line.startswith(":"):
                            continue  # a comment: keep-alive
                        field, _, value = line.partition(":")
                        if value.startswith(" "):
                            value = value[1:]
                        if field == "event":
                            event = value
                        elif field == "data":
                            data.append(value)
                        elif field == "id":
                            last_id = value
                        elif field == "retry" and value.isdigit():
                            retry_ms = int(value)
                    ended = True
                except (OSError, ValueError):
                    ended = False
            failures += 1
            if failures > reconnects:
                how = "ended" if ended else "broke"
                raise ClientError(0, f"the event stream of {task_id} {how} before its result")
            time.sleep(min(retry_ms, 1000) / 1000.0)

    # Pool ---------------------------------------------------------------------------------

    def status(self):
        """``GET /api/workers/status``: stats, queues, resources and every live worker."""
        return self._expect(200, "GET", "/api/workers/status")

    def stats(self):
        """``GET /api/workers/stats``."""
        return self._expect(200, "GET", "/api/workers/stats")

    # Plumbing -----------------------------------------------------------------------------

    @staticmethod
    def _task_body(type, data, options):
        unknown = sorted(set(options) - set(_TASK_OPTIONS))
        if unknown:
            raise TypeError(f"unknown task options: {', '.join(unknown)} (known: {', '.join(_TASK_OPTIONS)})")
        return {"type": type, "data": data, "options": options}

    def _expect(self, want, method, path, body=None):
        status, answer = self._send(method, path, body)
        if status != want:
            raise ClientError(status, answer)
        return answer

    def _request(self, method, path, body, headers=None):
        headers = dict(headers or {})
        payload = None
        if body is not None:
            payload = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        return urllib.request.Request(self.url + path, data=payload, method=method, headers=headers)

    def _open(self, request, timeout):
        return urllib.request.urlopen(request, timeout=timeout, context=self._tls)

    def _send(self, method, path, body=None):
        request = self._request(method, path, body, {"Accept": "application/json"})
        try:
            with self._open(request, self.timeout) as response:
                return response.status, _decode(response.read())
        except urllib.error.HTTPError as e:
            with e:
                return e.code, _decode(e.read())


def _quote(task_id):
    return urllib.parse.quote(str(task_id), safe="")


def _decode(raw):
    if not raw:
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except ValueError:
        return raw.decode("utf-8", errors="replace")
