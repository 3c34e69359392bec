"""`python -m caves_faust.dashboard` (what `make dashboard` runs): the app on DASHBOARD_BIND:DASHBOARD_PORT.

Streamlit's options come from the settings, so the dashboard is configured like the worker, in one place; the
rest are fixed for a shop's server: no usage statistics, no file watching, no developer toolbar.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from streamlit.web import cli

from caves_faust.settings import load_settings

APP = Path(__file__).with_name("app.py")
LOG_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"  # as the worker's


def _logging() -> None:
    """Our lines at INFO and anyone's warnings; the Snowflake connector's chatter (a line per query) left out."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    logging.getLogger("snowflake.connector").setLevel(logging.WARNING)


def main() -> None:
    settings = load_settings()
    _logging()
    sys.argv = [
        "streamlit", "run", str(APP),
        "--server.port", str(settings.dashboard_port),
        "--server.address", settings.dashboard_bind,
        "--server.headless", "true",
        "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "viewer",
    ]
    cli.main()


if __name__ == "__main__":
    main()
