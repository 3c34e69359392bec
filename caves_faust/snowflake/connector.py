"""How snowflake-connector-python is brought into a caves_faust process: without DataFrames, without tracing,
with its cancellation timers' failures logged in one line, and without a warning per HTTP try.

caves_faust reads Snowflake's answers as rows (tuples or dicts), never as DataFrames, and does not trace requests.
Two optional parts of the connector cost it all the same, so they are set aside here, before anything imports
the connector (`caves_faust/__init__.py` imports this module first):

- DataFrames: importing the connector imports pandas, pyarrow and numpy when they are installed, for
  `fetch_pandas_*`, `write_pandas` and numpy parameters. They are installed here (the dashboard and the embedded
  Snowflake use them), and they are ~85 MB of resident memory in every worker. They are held off during the
  connector's import only: importing them afterwards works as usual, only the connector's own DataFrame methods
  then say pandas is missing.
- The AWS SDK: the connector imports boto3 and botocore when installed (here they come with the connector's
  dependencies), for workload identity federation on AWS and for telling Snowflake it runs on EC2 (an
  instance-metadata request at connection). caves_faust authenticates with a password or a key pair: they are
  held off the same way, ~33 MB of resident memory per worker (measured), and the connector then skips both.
- OpenTelemetry: the connector imports it on every request, to pass trace headers on when it is installed. Where
  it is not, each failed import searches the path again, taking and releasing the GIL at each step while the event
  loop holds it, in the write. A None entry makes the miss immediate.
- Cancellation timers: with `network_timeout` set, the connector starts a timer per statement that asks Snowflake
  to cancel it once it outlives the timeout. In an outage that request fails as well, in the timer's thread, and
  Python prints the traceback to stderr, which a Faust worker logs line by line: some sixty warnings per statement.
  Such a failure is logged as one line instead (the statement itself fails in its caller as usual).
- HTTP tries: the connector's own copy of urllib3 warns at each try that fails to connect, about six per failed
  request in an outage; the request's failure is logged by the connector and the sink all the same.
- Compression: the connector gzips every request body at Python's default level, 9. A warehouse-mode batch of
  5,000 rows binds ~2.4 MB of JSON, ~60 ms of level 9 in the write against ~8 ms at level 1, for a body ~35%
  larger (measured); the write is what paces warehouse mode, so its requests go at level 1, as the streaming
  client's appends do.
"""

from __future__ import annotations

import gzip
import importlib
import importlib.util
import logging
import sys
import threading
from functools import partial
from types import SimpleNamespace

from caves_faust.observability.logs import one_line

log = logging.getLogger(__name__)

DATAFRAMES = ("pandas", "pyarrow", "numpy")
AWS_SDK = ("boto3", "botocore")
REQUEST_GZIP_LEVEL = 1


def import_connector() -> None:
    if importlib.util.find_spec("opentelemetry") is None:
        sys.modules.setdefault("opentelemetry", None)  # type: ignore[arg-type]
    if "snowflake.connector" in sys.modules:
        return  # too late
    # Each group held off unless some of it is imported already: whoever imported it uses it.
    held_off = [name for group in (DATAFRAMES, AWS_SDK) if not any(name in sys.modules for name in group)
                for name in group]
    for name in held_off:
        sys.modules[name] = None  # type: ignore[assignment]  # `import name` raises ImportError
    try:
        importlib.import_module("snowflake.connector")
    finally:
        for name in held_off:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


def log_timer_failures_in_one_line() -> None:
    from snowflake.connector.errors import Error

    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if isinstance(args.thread, threading.Timer) and isinstance(args.exc_value, Error):
            log.warning("snowflake: the connector's timer %s failed: %s", args.thread.name, one_line(args.exc_value))
        else:
            previous(args)

    threading.excepthook = hook


def compress_requests_at_level_one() -> None:
    """The connector's requests compressed at REQUEST_GZIP_LEVEL: its network module sees a `gzip` whose
    `compress` has that level (tests/unit/test_connector.py checks it still compresses with `gzip.compress`)."""
    from snowflake.connector import network

    faster = SimpleNamespace(**{**vars(gzip), "compress": partial(gzip.compress, compresslevel=REQUEST_GZIP_LEVEL)})
    network.gzip = faster  # type: ignore[assignment]


import_connector()
compress_requests_at_level_one()
log_timer_failures_in_one_line()
logging.getLogger("snowflake.connector.vendored.urllib3.connectionpool").setLevel(logging.ERROR)
