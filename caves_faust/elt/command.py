"""`faust -A caves_faust elt`: the warehouse layers built once; exit 0 only when every model and test passed."""

from __future__ import annotations

from caves_faust.cli import ExitCodeCommand
from caves_faust.elt.build import build
from caves_faust.faust_app import app, settings
from caves_faust.snowflake.connection import describe


@app.command(base=ExitCodeCommand)
async def elt(self: ExitCodeCommand) -> int:
    """Build the warehouse layers once (dbt build: STAGING, PROD, analytics, data tests); 0 only if all passed."""
    self.say(f"elt: dbt build on Snowflake {describe(settings)}")
    result = await build(settings)
    self.say(result.summary())
    return 0 if result.outcome == "success" else 1
