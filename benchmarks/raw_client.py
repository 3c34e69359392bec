"""The machine's limit for reading: a raw aiokafka consumer (`getmany` + `json.loads`), no framework.

Run as `python -m benchmarks.raw_client BOOTSTRAP TOPIC EXPECTED`; it prints `RAW AT <decoded> <time.time()>` at
every hundredth of EXPECTED, as the bare Faust agent does.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from aiokafka import AIOKafkaConsumer

MAX_RECORDS = 10_000


async def main(bootstrap: str, topic: str, expected: int) -> None:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"raw-{time.time_ns()}",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    every = max(1, expected // 100)
    decoded = 0
    try:
        while decoded < expected:
            for records in (await consumer.getmany(timeout_ms=1000, max_records=MAX_RECORDS)).values():
                for record in records:
                    json.loads(record.value)
                    decoded += 1
                    if decoded % every == 0 or decoded == expected:
                        print(f"RAW AT {decoded} {time.time()}", flush=True)
    finally:
        await consumer.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
