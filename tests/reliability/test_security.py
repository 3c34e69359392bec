"""The worker's exposure: its web server listens on loopback only, and no secret leaks anywhere it writes."""

from __future__ import annotations

import json
import socket

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from caves_faust.devstack.process import free_port
from tests.delivery import metric, mixed_payloads
from tests.harness import wait_until
from tests.reliability.faults import listening_addresses, non_loopback_address

OUTAGE_RETRIES = 'snowflake_retries_total{reason="outage"}'

pytestmark = pytest.mark.integration

PASSWORD = "s3cr3t-CANARY-pw"
PASSPHRASE = "s3cr3t-CANARY-passphrase"
WEB_PAGES = ["/", "/metrics", "/stock/", "/stock/1001/", "/table/", "/table/stock/", "/table/product_window/"]


def test_web_server_listens_on_loopback_only(start_worker):
    worker = start_worker()

    assert listening_addresses(worker.web_port) == ["127.0.0.1"]
    assert worker.get("/stock/")[0] == 200
    address = non_loopback_address()
    if address is not None:  # the same port through this machine's other address is closed
        with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
            sock.settimeout(5)
            sock.connect((address, worker.web_port))


def encrypted_private_key(path) -> str:
    """A PKCS#8 key file encrypted with PASSPHRASE; returns a line of its body (secret material too)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.BestAvailableEncryption(PASSPHRASE.encode()))
    path.write_bytes(pem)
    return pem.decode().splitlines()[5]


@pytest.mark.parametrize("auth", ["password", "key_pair"])
def test_no_secret_in_logs_errors_metrics_or_web_pages(auth, pipeline, start_worker, tmp_path):
    # The embedded Snowflake takes any password and never reads SNOWFLAKE_PASSWORD: the secrets only flow on the
    # real-account path. So the worker is configured for a real account, with every HTTP request of the Snowflake
    # connector sent through a proxy address where nothing listens: the connection fails on this machine (nothing
    # leaves it, whatever DNS says), errors are logged and retried, and we read everything the worker emitted.
    nowhere = f"http://127.0.0.1:{free_port()}"
    env = {"SNOWFLAKE_ACCOUNT": "canary-account", "SNOWFLAKE_USER": "canary_user",
           "SNOWFLAKE_TIMEOUT_SECONDS": "3", "SINK_RETRY_MAX_SECONDS": "1",
           # A first batch long enough to hold every event produced, whatever the partitions' fetch order.
           "SINK_FLUSH_SECONDS": "3",
           "HTTPS_PROXY": nowhere, "HTTP_PROXY": nowhere, "NO_PROXY": "",
           # Streaming takes a key pair only, and sends a batch's dead letters after its rows: this test reads
           # them while Snowflake never answers, which only warehouse mode's letters do not wait for.
           "SINK_MODE": "warehouse"}
    secrets = [PASSWORD, PASSPHRASE]
    if auth == "password":
        env["SNOWFLAKE_PASSWORD"] = PASSWORD
    else:
        key_file = tmp_path / "canary_key.p8"
        secrets.append(encrypted_private_key(key_file))
        env.update(SNOWFLAKE_PRIVATE_KEY_FILE=str(key_file), SNOWFLAKE_PRIVATE_KEY_PASSPHRASE=PASSPHRASE)
    # Produced before the worker starts, so that its first batch holds every invalid event: that batch's dead
    # letters are sent, then its Snowflake write retries for the rest of the test, holding back later batches.
    pipeline.produce([case.payload for case in mixed_payloads(200)])
    worker = start_worker(**env)

    # The real-account code path ran and failed, connection after connection, with its errors in the log.
    wait_until(lambda: (metric(worker, OUTAGE_RETRIES) or 0) >= 3, 90, "three failed Snowflake connections, retried")
    assert "Snowflake unavailable, retrying with backoff: reason=outage error=OperationalError" in worker.log_text()
    assert "account canary-account" in worker.log_text()
    wait_until(lambda: len(pipeline.dead_letters()) == 4, 60, "the dead letters (they do not need Snowflake)")

    emitted = {"log": worker.log_text(), "dead letters": json.dumps(pipeline.dead_letters())}
    for page in WEB_PAGES:
        status, body = worker.get(page)
        assert status in (200, 404), (page, status)
        emitted[page] = body if isinstance(body, str) else json.dumps(body)
    for where, text in emitted.items():
        for secret in secrets:
            assert secret not in text, f"a secret appears in {where}"
