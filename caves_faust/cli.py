"""The base of the commands that answer with an exit code (`audit`, `elt`, `dlq`, `history`)."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, NoReturn

from faust.cli import AppCommand


class ExitCodeCommand(AppCommand):
    """A command whose `run` returns the process's exit code (a Faust command always exits 0 otherwise). It runs
    without a Faust worker around it, in an event loop of its own: it uses Kafka and Snowflake clients of its own."""

    abstract: ClassVar[bool] = True  # a base, not a command of the CLI itself (Faust registers the others)

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise SystemExit(asyncio.run(self.run(*self.args, *args, **{**self.kwargs, **kwargs})))
