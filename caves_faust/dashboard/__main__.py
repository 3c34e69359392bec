"""`python -m caves_faust.dashboard` (what `make dashboard` runs): the app on DASHBOARD_BIND:DASHBOARD_PORT.

Streamlit's options come from the settings, so the dashboard is configured like the worker, in one place; the
rest are fixed for a shop's server: no usage statistics, no file watching, no developer toolbar.
"""

from __future__ import annotations

import sys
from pathlib import Path

from streamlit.web import cli

from caves_faust.settings import load_settings

APP = Path(__file__).with_name("app.py")


def main() -> None:
    settings = load_settings()
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
