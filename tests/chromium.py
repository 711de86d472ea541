"""Headless Chromium for tests: screenshots, and a page's own view of itself over the DevTools Protocol.

The DevTools Protocol is spoken over `--remote-debugging-pipe` (JSON messages separated by NUL bytes on file
descriptors 3 and 4), not over a WebSocket: no port to pick or to leak, no websocket client to depend on, and
the browser dies with the pipe. Playwright is not used because it downloads its own browsers; the test must run
the Debian `chromium` that `.ci/run` installs.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find() -> str | None:
    """The first Chromium on PATH (or $CNNKIT_CHROMIUM), else None."""
    for name in (os.environ.get("CNNKIT_CHROMIUM"), *NAMES):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _flags(profile: str) -> list[str]:
    flags = [
        "--headless",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        flags.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox (CI containers)
    return flags


def screenshot(browser: str, page: Path, out: Path, *, width: int, height: int = 1400, timeout: float = 90) -> Path:
    """`chromium --headless --screenshot` of `page` in a width×height window."""
    with tempfile.TemporaryDirectory(prefix="cnnkit-chromium-") as profile:
        proc = subprocess.run(
            [browser, *_flags(profile), f"--screenshot={out}", f"--window-size={width},{height}", page.as_uri()],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"chromium --screenshot failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return out


# The page's view of itself, evaluated after the load event: every image, and whether the page fits its width.
_INSPECT = """JSON.stringify({
  images: Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete,
                                                   naturalWidth: i.naturalWidth, src: i.src.slice(0, 30)})),
  scrollWidth: document.documentElement.scrollWidth,
  innerWidth: window.innerWidth,
  headings: Array.from(document.querySelectorAll('h1, h2')).map(h => h.textContent.trim()),
  tables: document.querySelectorAll('table').length
})"""


class DevTools:
    """A minimal DevTools Protocol client over the pipe: send commands, collect events."""

    def __init__(self, browser: str, timeout: float = 60):
        self.timeout = timeout
        self._profile = tempfile.TemporaryDirectory(prefix="cnnkit-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def child_fds():  # Chromium reads commands on fd 3 and writes replies on fd 4
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        # The pipe ends sit above 4 before the dup2 (fds 3 and 4 may be ours already: dup them out of the way).
        self.proc = subprocess.Popen(
            [browser, *_flags(self._profile.name), "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            pass_fds=(3, 4),
            preexec_fn=child_fds,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._ids = itertools.count(1)
        self._replies: dict[int, dict] = {}
        self._events: list[dict] = []
        self._inbox: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        buffer = b""
        while True:
            try:
                chunk = os.read(self._from_browser, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                self._inbox.put(None)
                return
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for raw in messages:
                self._inbox.put(json.loads(raw))

    def _pump(self, deadline: float) -> bool:
        try:
            message = self._inbox.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return False
        if message is None:
            raise RuntimeError(f"chromium closed the DevTools pipe:\n{self.proc.stderr.read().decode()[-2000:]}")
        if "id" in message:
            self._replies[message["id"]] = message
        else:
            self._events.append(message)
        return True

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        number = next(self._ids)
        message = {"id": number, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while number not in self._replies:
            if not self._pump(deadline):
                raise TimeoutError(f"no reply to {method} within {self.timeout} s")
        reply = self._replies.pop(number)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def wait_for(self, method: str, session: str | None = None) -> dict:
        deadline = time.monotonic() + self.timeout
        while True:
            for event in self._events:
                if event.get("method") == method and (session is None or event.get("sessionId") == session):
                    return event
            if not self._pump(deadline):
                raise TimeoutError(f"no {method} event within {self.timeout} s")

    def events(self, *methods: str) -> list[dict]:
        while self._pump(time.monotonic() + 0.2):  # drain what has arrived
            pass
        return [e for e in self._events if e.get("method") in methods]

    def close(self):
        try:
            self.send("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        self.proc.stderr.close()
        self._profile.cleanup()


def inspect(browser: str, page: Path, *, width: int, height: int = 900) -> dict:
    """Load `page` at `width` px; return its images, layout width, headings, console errors and requests."""
    tools = DevTools(browser)
    try:
        target = tools.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = tools.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            tools.send(f"{domain}.enable", session=session)
        tools.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
            session=session,
        )
        tools.send("Page.navigate", {"url": page.as_uri()}, session=session)
        tools.wait_for("Page.loadEventFired", session)
        found = tools.send(
            "Runtime.evaluate", {"expression": _INSPECT, "returnByValue": True, "awaitPromise": True}, session=session
        )
        result = json.loads(found["result"]["value"])
        errors = []
        for event in tools.events("Runtime.exceptionThrown", "Runtime.consoleAPICalled", "Log.entryAdded"):
            params = event["params"]
            if event["method"] == "Runtime.exceptionThrown":
                errors.append(params["exceptionDetails"].get("text", "exception"))
            elif event["method"] == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
            elif event["method"] == "Log.entryAdded" and params["entry"]["level"] == "error":
                errors.append(params["entry"]["text"])
        result["console_errors"] = errors
        result["requests"] = [e["params"]["request"]["url"] for e in tools.events("Network.requestWillBeSent")]
        result["failed"] = [e["params"].get("errorText") for e in tools.events("Network.loadingFailed")]
        return result
    finally:
        tools.close()


if __name__ == "__main__":  # `make pictures`: python tests/chromium.py PAGE OUT.png WIDTH HEIGHT
    import sys

    page_arg, out_arg, width_arg, height_arg = sys.argv[1:5]
    browser = find()
    if browser is None:
        sys.exit("no Chromium on PATH: install Debian's `chromium` to take the report's screenshot")
    screenshot(browser, Path(page_arg).resolve(), Path(out_arg).resolve(), width=int(width_arg), height=int(height_arg))
    print(f"wrote {out_arg}")
