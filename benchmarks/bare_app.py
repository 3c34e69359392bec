"""The framework's ceiling: a bare Faust agent on the same broker and events that only decodes JSON.

Run as `python -m benchmarks.bare_app worker -l warn` with BARE_TOPIC and BARE_EXPECTED set; it prints
`BARE AT <decoded> <time.time()>` at every hundredth of BARE_EXPECTED (`benchmarks/steady.py` reads them).
"""

from __future__ import annotations

import json
import os
import time

import faust

app = faust.App(
    os.environ.get("BARE_APP_ID", "bench-bare"),
    broker=os.environ["KAFKA_BROKER"],
    store="memory://",
    web_enabled=False,
)
topic = app.topic(os.environ["BARE_TOPIC"], value_type=bytes, value_serializer="raw")
expected = int(os.environ["BARE_EXPECTED"])
every = max(1, expected // 100)


@app.agent(topic)
async def decode(stream: faust.StreamT) -> None:
    decoded = 0
    async for value in stream:
        json.loads(value)
        decoded += 1
        if decoded % every == 0 or decoded == expected:
            print(f"BARE AT {decoded} {time.time()}", flush=True)


if __name__ == "__main__":
    app.main()
