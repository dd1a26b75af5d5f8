"""The Client over HTTPS: a server with a certificate from a private authority (made by
tests/sdk_python.rs, which names its directory in WORKERPOOL_TEST_TLS_DIR: ca.pem,
server.pem, server.key) is trusted through ``ca_file`` or WORKERPOOL_CA_FILE, and refused
when the client trusts another authority (WORKERPOOL_TEST_OTHER_CA) or only the system's."""

import json
import os
import ssl
import urllib.error
from pathlib import Path

import pytest

from test_worker import Server, _type
from workerpool_worker import Client

TLS_DIR = os.environ.get("WORKERPOOL_TEST_TLS_DIR")
OTHER_CA = os.environ.get("WORKERPOOL_TEST_OTHER_CA")

pytestmark = pytest.mark.skipif(
    not (TLS_DIR and OTHER_CA), reason="WORKERPOOL_TEST_TLS_DIR is not set (tests/sdk_python.rs sets it)"
)


@pytest.fixture(scope="module")
def https():
    tls = Path(TLS_DIR)
    config = (
        f"[server]\ntls_cert_file = {json.dumps(str(tls / 'server.pem'))}\n"
        f"tls_key_file = {json.dumps(str(tls / 'server.key'))}\n\n"
        "[pool]\nmax_workers = 2\nmin_workers = 0\ngraceful_shutdown_timeout_ms = 2000\n\n"
        + _type("text_processing", [os.environ.get("WORKERPOOL_BIN", "workerpool"), "demo-worker"])
    )
    srv = Server(config)
    yield srv
    srv.stop()


def _refused(client):
    with pytest.raises(urllib.error.URLError) as e:
        client.stats()
    assert isinstance(e.value.reason, ssl.SSLCertVerificationError), e.value


def test_a_trusted_private_authority_works(https):
    assert https.base.startswith("https://")
    client = Client(https.base, ca_file=str(Path(TLS_DIR) / "ca.pem"), timeout=30)
    record = client.execute("text_processing", {"op": "echo", "n": 1})
    assert record["status"] == "completed", record
    task_id = client.submit("text_processing", {"op": "progress", "steps": 2, "step_ms": 50})
    events = list(client.watch(task_id, timeout=30))
    assert events[-1][0] == "result" and events[-1][1]["status"] == "completed", events


def test_the_authority_can_come_from_the_environment(https, monkeypatch):
    monkeypatch.setenv("WORKERPOOL_CA_FILE", str(Path(TLS_DIR) / "ca.pem"))
    assert "by_type" in Client(https.base, timeout=30).stats()


def test_an_untrusted_server_is_refused(https, monkeypatch):
    monkeypatch.delenv("WORKERPOOL_CA_FILE", raising=False)
    _refused(Client(https.base, ca_file=OTHER_CA, timeout=30))
    _refused(Client(https.base, timeout=30))  # the system's authorities only
    with pytest.raises(urllib.error.URLError):
        list(Client(https.base, ca_file=OTHER_CA, timeout=30).watch("any-task", reconnects=0))


def test_a_missing_ca_file_fails_at_once():
    with pytest.raises(OSError):
        Client("https://127.0.0.1:1", ca_file="/nonexistent/ca.pem")
