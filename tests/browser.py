"""A real browser for the tests: Debian's headless Chromium driven over the Chrome DevTools Protocol.

No browser download, no driver: `chromium --remote-debugging-port=0` writes the port it chose into its profile
(`DevToolsActivePort`), and aiohttp speaks the protocol's JSON over the websocket. A page records what its console
and its JavaScript report as errors from the moment it opens.
"""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
from PIL import Image

from tests.tools import require_command

# Headless, in a throwaway profile, with none of the browser's own traffic (updates, sync, field trials).
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--no-default-browser-check", "--remote-debugging-port=0",
)
START_SECONDS = 30
SCREENSHOT_COLOURS = 128


class Chromium:
    """One headless Chromium process and its DevTools connection; `async with` starts and stops it."""

    def __init__(self, profile: Path, width: int = 1280, height: int = 900):
        self.binary = require_command("chromium", "Debian's `chromium` package", probe=["--version"])
        self.profile = profile
        self.size = (width, height)
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._listeners: dict[str, list[dict]] = {}  # session id -> its events

    async def __aenter__(self) -> "Chromium":
        self.profile.mkdir(parents=True, exist_ok=True)
        (self.profile / "DevToolsActivePort").unlink(missing_ok=True)  # a stale one names a closed port
        self.process = subprocess.Popen(
            [self.binary, *FLAGS, f"--user-data-dir={self.profile}", f"--window-size={self.size[0]},{self.size[1]}",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=(self.profile / "chromium.log").open("wb"), stdin=subprocess.DEVNULL,
        )
        self._http = aiohttp.ClientSession()
        try:
            port, path = await self._devtools_address()
            self._socket = await self._http.ws_connect(f"ws://127.0.0.1:{port}{path}", max_msg_size=0)
        except BaseException:
            await self._http.close()
            self._stop()
            raise
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._reader.cancel()
        await self._socket.close()
        await self._http.close()
        self._stop()

    def _stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    async def _devtools_address(self) -> tuple[int, str]:
        active = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"chromium exited with {self.process.returncode}: see {self.profile}/chromium.log")
            lines = active.read_text().split() if active.exists() else []
            if len(lines) == 2:
                return int(lines[0]), lines[1]
            await asyncio.sleep(0.1)
        raise AssertionError(f"chromium did not open its DevTools port within {START_SECONDS}s")

    async def _read(self) -> None:
        async for message in self._socket:
            data = json.loads(message.data)
            if "id" in data:
                future = self._pending.pop(data["id"])
                if "error" in data:
                    future.set_exception(AssertionError(f"DevTools: {data['error']}"))
                else:
                    future.set_result(data.get("result", {}))
            elif data.get("sessionId") in self._listeners:
                self._listeners[data["sessionId"]].append(data)

    async def send(self, method: str, session: str | None = None, **params: Any) -> dict:
        message_id = next(self._ids)
        self._pending[message_id] = asyncio.get_running_loop().create_future()
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        await self._socket.send_str(json.dumps(message))
        return await asyncio.wait_for(self._pending[message_id], 60)

    async def open(self, url: str) -> "Page":
        target = await self.send("Target.createTarget", url="about:blank")
        session = (await self.send("Target.attachToTarget", targetId=target["targetId"], flatten=True))["sessionId"]
        self._listeners[session] = []
        page = Page(self, session)
        for domain in ("Runtime", "Log", "Page"):
            await page.send(f"{domain}.enable")
        await page.send("Emulation.setDeviceMetricsOverride", width=self.size[0], height=self.size[1],
                        deviceScaleFactor=1, mobile=False)
        await page.send("Page.navigate", url=url)
        return page


class Page:
    """One tab, attached to its own DevTools session."""

    def __init__(self, browser: Chromium, session: str):
        self.browser = browser
        self.session = session

    async def send(self, method: str, **params: Any) -> dict:
        return await self.browser.send(method, self.session, **params)

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def console_errors(self) -> list[str]:
        """What the page's console and JavaScript reported as errors so far."""
        errors = []
        for event in self.browser._listeners[self.session]:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
            elif method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                errors.append(details.get("exception", {}).get("description") or details.get("text", "exception"))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                errors.append(f"{params['entry']['text']} ({params['entry'].get('url', '')})")
        return errors

    async def screenshot(self, path: Path, content: str = "body") -> None:
        """What the window shows, down to the end of the `content` element (a CSS selector), as a PNG of at most
        SCREENSHOT_COLOURS colours (a third of the bytes). Open the browser tall enough for the whole page: a page
        resized for its picture redraws, and some of it (tables drawn on a canvas) would not be there yet."""
        height = await self.evaluate(f"document.querySelector({json.dumps(content)}).scrollHeight")
        clip = {"x": 0, "y": 0, "width": self.browser.size[0], "height": min(int(height), self.browser.size[1]),
                "scale": 1}
        shot = await self.send("Page.captureScreenshot", format="png", clip=clip)
        image = Image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("RGB")
        image.quantize(colors=SCREENSHOT_COLOURS, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
