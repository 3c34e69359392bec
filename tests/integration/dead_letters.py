"""Dead letters written by a test itself, in the worker's letter format (caves_faust.events.letters.DeadLetter.to_json):
what an earlier version of the worker left in the DLQ, and commands that read them."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys

from aiokafka import AIOKafkaProducer

from tests.harness import Pipeline, Worker

COMMAND_SECONDS = 120


def letter(partition: int, offset: int, timestamp: float, error_type: str, payload: bytes, topic: str,
           key: bytes | None = None) -> dict:
    """A dead letter as the worker writes it."""
    try:
        text, encoding = payload.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(payload).decode("ascii"), "base64"
    key = str(1000 + offset).encode() if key is None else key
    return {"error_type": error_type, "error_message": f"{error_type} at {partition}/{offset}", "payload": text,
            "payload_encoding": encoding, "payload_bytes": len(payload), "payload_truncated": False,
            "topic": topic, "partition": partition, "offset": offset, "timestamp": timestamp,
            "key": key.decode(), "key_encoding": "utf-8", "key_truncated": False}


def write_letters(pipeline: Pipeline, letters: list[dict]) -> list[tuple[int, int]]:
    """Onto the pipeline's DLQ topic, each on its source partition's DLQ partition as the worker does; returns their
    (DLQ partition, DLQ offset)."""

    async def send() -> list[tuple[int, int]]:
        producer = AIOKafkaProducer(bootstrap_servers=pipeline.stack.bootstrap, acks="all")
        await producer.start()
        try:
            sent = [await producer.send_and_wait(pipeline.dlq_topic, json.dumps(item, ensure_ascii=False).encode(),
                                                 partition=item["partition"] % pipeline.partitions)
                    for item in letters]
        finally:
            await producer.stop()
        return [(r.partition, r.offset) for r in sent]

    return asyncio.run(send())


def command(pipeline: Pipeline, *args: str, expect: int = 0, worker: Worker | None = None) -> str:
    """`python -m caves_faust <args>` with the settings of `worker` (default: those of a worker of the pipeline,
    not started); its output, once it exited with `expect`."""
    env = (worker or pipeline.worker()).env
    result = subprocess.run([sys.executable, "-m", "caves_faust", *args], env=env, check=False,
                            capture_output=True, text=True, timeout=COMMAND_SECONDS)
    assert result.returncode == expect, result.stdout + result.stderr
    return result.stdout
