"""A pause after a failure: for `RETRY_SECONDS` a source that just failed is not tried again, and the reason it
failed is given at once. A page view with Snowflake or the worker down then waits for one timeout, not one per
figure, and the source is not hammered by every viewer."""

from __future__ import annotations

import time

RETRY_SECONDS = 10.0


class Pause:
    def __init__(self) -> None:
        self._until = float("-inf")
        self._reason: Exception | None = None

    def check(self) -> None:
        """Raise the last failure's reason while the pause lasts."""
        if self._reason is not None and time.monotonic() < self._until:
            raise self._reason

    def failed(self, reason: Exception) -> Exception:
        self._until, self._reason = time.monotonic() + RETRY_SECONDS, reason
        return reason
