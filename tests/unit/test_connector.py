"""A caves_faust process imports the Snowflake connector without pandas, pyarrow and numpy, nor the AWS SDK, and
can import them afterwards (the dashboard does)."""

import subprocess
import sys

from caves_faust.devstack.process import free_port
from caves_faust.snowflake.connector import AWS_SDK, DATAFRAMES


def run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_worker_modules_leave_the_dataframe_libraries_out():
    loaded = run("import sys, caves_faust.intake.agent, snowflake.connector.options as o; "
                 f"print(sorted(m for m in {DATAFRAMES!r} if m in sys.modules), o.installed_pandas)")
    assert loaded == "[] False"


def test_the_worker_modules_leave_the_aws_sdk_out():
    loaded = run("import sys, caves_faust.intake.agent, snowflake.connector.options as o; "
                 f"print(sorted(m for m in {AWS_SDK!r} if m in sys.modules), o.installed_boto)")
    assert loaded == "[] False"


def test_pandas_still_imports_afterwards():
    assert run("import caves_faust.snowflake, pandas; print(pandas.DataFrame({'a': [1, 2]})['a'].sum())") == "3"


def test_a_process_that_imported_pandas_first_keeps_the_connector_s_dataframe_support():
    imported = run("import pandas, caves_faust.snowflake, snowflake.connector.options as o; print(o.installed_pandas)")
    assert imported == "True"


def stderr_of(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stderr.strip()


RAISE_IN_A_TIMER = """
import logging, threading, caves_faust.snowflake
from snowflake.connector.errors import OperationalError
logging.basicConfig(format="%(levelname)s %(message)s")
def fail():
    raise {error}
timer = threading.Timer(0, fail)
timer.start()
timer.join()
"""


def test_a_connector_error_in_a_timer_thread_is_one_warning_line():
    printed = stderr_of(RAISE_IN_A_TIMER.format(error="OperationalError('250003: Failed to execute request')"))
    assert printed.splitlines() == [printed] and printed.startswith("WARNING snowflake: the connector's timer ")
    assert "250003: Failed to execute request" in printed


def test_any_other_error_in_a_thread_keeps_its_traceback():
    printed = stderr_of(RAISE_IN_A_TIMER.format(error="KeyError('not the connector')"))
    assert "Traceback" in printed and "KeyError: 'not the connector'" in printed


RETRY_A_REFUSED_CONNECTION = """
import logging{imports}
from snowflake.connector.vendored import urllib3
logging.basicConfig(format="%(levelname)s %(name)s %(message)s")
try:
    urllib3.PoolManager().request("GET", "http://127.0.0.1:{port}/", retries=urllib3.Retry(1))
except urllib3.exceptions.MaxRetryError:
    print("refused")
"""


def test_the_connector_s_tries_that_fail_to_connect_are_not_each_a_warning():
    port = free_port()  # nothing listens there
    without = stderr_of(RETRY_A_REFUSED_CONNECTION.format(imports="", port=port))
    assert "Retrying (Retry(total=0" in without  # what urllib3 says by itself
    assert stderr_of(RETRY_A_REFUSED_CONNECTION.format(imports=", caves_faust.snowflake", port=port)) == ""


def test_the_connectors_requests_are_compressed_at_level_one():
    import gzip
    import inspect

    from snowflake.connector import network

    import caves_faust.snowflake  # noqa: F401  (the import applies it)
    from caves_faust.snowflake.connector import REQUEST_GZIP_LEVEL

    assert "gzip.compress(data.encode(" in inspect.getsource(network.SnowflakeRestful._request_exec), (
        "the connector no longer compresses its requests with gzip.compress: recheck compress_requests_at_level_one")
    body = b'{"EVENT_TYPE":"ORDER_CREATED","PRODUCT_ID":1015}' * 1000
    assert network.gzip.compress(body) == gzip.compress(body, compresslevel=REQUEST_GZIP_LEVEL)
    assert gzip.decompress(network.gzip.compress(body)) == body
