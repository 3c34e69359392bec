"""Shared fixtures: one real Kafka broker and one embedded Snowflake per test session, on free ports.

Each test gets its own `Pipeline` (topics, consumer group, Snowflake database, data dirs), so tests
never see each other's data and never collide with a `make demo` running on the default ports.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Iterator

import pytest

# Unit tests import the app: keep its settings off any local .env and on in-memory tables.
os.environ.setdefault("FAUST_STORE", "memory://")

from tests.harness import Pipeline, Stack, Worker  # noqa: E402

_names = itertools.count()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    started = Stack(tmp_path_factory.mktemp("stack")).start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(autouse=True)
def servers_alive(request: pytest.FixtureRequest) -> Iterator[None]:
    """A broker or embedded Snowflake that dies fails the test it died in, with its exit and last log lines, and
    is started again, so that the session's later tests are not failed by it too."""
    if "stack" not in request.fixturenames:
        yield
        return
    stack: Stack = request.getfixturevalue("stack")
    check_alive(stack, "before this test")
    yield
    check_alive(stack, "during this test")


def check_alive(stack: Stack, when: str) -> None:
    deaths = stack.revive()
    if deaths:
        pytest.fail(f"a server of the test session died {when} (started again since):\n" + "\n".join(deaths),
                    pytrace=False)


@pytest.fixture
def pipeline(stack: Stack, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Pipeline]:
    name = f"t{next(_names)}_{request.node.name[:30]}".replace("[", "_").replace("]", "").replace("-", "_").lower()
    created = Pipeline(stack, name, tmp_path).create_topics()
    workers: list[Worker] = []
    created.started_workers = workers  # type: ignore[attr-defined]
    yield created
    for worker in workers:
        worker.stop()


@pytest.fixture
def start_worker(pipeline: Pipeline):
    """start_worker(index=0, **env) -> a running Worker, stopped after the test."""

    def start(index: int = 0, wait_assigned: bool = True, **env: str) -> Worker:
        worker = pipeline.worker(index, **env)
        pipeline.started_workers.append(worker)  # type: ignore[attr-defined]
        return worker.start(wait_assigned=wait_assigned)

    return start


@pytest.fixture(params=["warehouse", "streaming"])
def sink_mode(request: pytest.FixtureRequest) -> str:
    """For the tests that run in both sink modes: the SINK_MODE they give their workers."""
    return request.param
