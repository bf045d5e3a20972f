"""Headless Chromium for the reports: print to A4 PDF, screenshots, and checks in a real browser.

The browser is driven through the Chrome DevTools protocol over a pipe
(``--remote-debugging-pipe``: JSON messages on file descriptors 3 and 4, each ended by a NUL
byte), so nothing listens on a port and no Python package is needed. Chromium is found on the
PATH (``chromium``, ``chromium-browser``, ``google-chrome``) or in ``LUDOSIMETRY_CHROMIUM``;
Debian: ``apt-get install chromium``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..results import atomic_write_bytes

__all__ = ["BROWSER_NAMES", "CHROMIUM_FLAGS", "BrowserError", "find_browser", "Browser", "html_to_pdf",
           "html_screenshot", "pdf_beside", "A4_IN"]

BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
#: Flags of every start: headless, no sandbox (root in containers), nothing fetched from the network.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio", "--no-default-browser-check")
#: A4 paper (inches).
A4_IN = (8.27, 11.69)


# copies above 9 first (a copy landing on 3 or 4 would keep close-on-exec), then onto 3 and 4
_LAUNCHER = ("import fcntl, os, sys\n"
             "r = fcntl.fcntl(int(sys.argv[1]), fcntl.F_DUPFD, 10)\n"
             "w = fcntl.fcntl(int(sys.argv[2]), fcntl.F_DUPFD, 10)\n"
             "os.dup2(r, 3)\nos.dup2(w, 4)\nos.set_inheritable(3, True)\nos.set_inheritable(4, True)\n"
             "os.execv(sys.argv[3], sys.argv[3:])\n")


class BrowserError(InputError):
    """No browser, or the browser failed (the message says which and how to install one)."""


def find_browser() -> str | None:
    """Path of a Chromium-family browser: ``LUDOSIMETRY_CHROMIUM``, else the first of :data:`BROWSER_NAMES`."""
    env = os.environ.get("LUDOSIMETRY_CHROMIUM")
    if env:
        return env if Path(env).is_file() else shutil.which(env)
    for name in BROWSER_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """A headless Chromium with one page, driven over the DevTools pipe (a context manager).

    Parameters
    ----------
    executable : str, optional
        Browser path (default :func:`find_browser`).
    width, height : int
        Viewport (CSS px).
    timeout_s : float
        Longest wait for any one reply (s).

    Attributes
    ----------
    console : list of dict
        Console messages, uncaught exceptions and log entries seen so far: ``{"level", "text"}``.
    """

    def __init__(self, executable: str | None = None, *, width: int = 1400, height: int = 900,
                 timeout_s: float = 60.0) -> None:
        exe = executable or find_browser()
        if not exe:
            raise BrowserError("no Chromium found (looked for " + ", ".join(BROWSER_NAMES) + " and "
                               "LUDOSIMETRY_CHROMIUM); install it (Debian: apt-get install chromium)",
                               source="--pdf")
        self.executable, self.width, self.height, self.timeout_s = exe, width, height, timeout_s
        self.console: list[dict[str, str]] = []
        self._events: list[dict] = []
        self._id = 0
        self._buf = b""
        self._proc: subprocess.Popen | None = None
        self._profile: str | None = None
        self._session: str | None = None

    # --- process and pipe ------------------------------------------------------------------
    def __enter__(self) -> Browser:
        self._profile = tempfile.mkdtemp(prefix="ludosimetry-chromium-")
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()

        # the protocol's pipes must be the browser's descriptors 3 and 4: a small Python launcher puts
        # them there and execs the browser (no preexec_fn: safe in threaded processes, any fd numbers)
        args = [sys.executable, "-c", _LAUNCHER, str(to_child_r), str(from_child_w), self.executable,
                *CHROMIUM_FLAGS, "--remote-debugging-pipe", f"--user-data-dir={self._profile}",
                f"--window-size={self.width},{self.height}", "about:blank"]
        try:
            self._proc = subprocess.Popen(args, pass_fds=(to_child_r, from_child_w), stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except OSError as exc:
            raise BrowserError(f"cannot start {self.executable}: {exc.strerror}", source="--pdf") from None
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self._w = os.fdopen(to_child_w, "wb")
        self._r = os.fdopen(from_child_r, "rb")
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self._session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for method in ("Page.enable", "Runtime.enable", "Log.enable"):
            self.call(method)
        self.set_viewport(self.width, self.height)
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            if self._proc is not None and self._proc.poll() is None:
                try:
                    self._session = None
                    self.call("Browser.close", timeout_s=5.0)
                except Exception:  # closing anyway
                    pass
                try:
                    self._proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
        finally:
            for fh in (getattr(self, "_w", None), getattr(self, "_r", None)):
                if fh is not None:
                    try:
                        fh.close()
                    except OSError:
                        pass
            if self._profile:
                shutil.rmtree(self._profile, ignore_errors=True)

    def _read_message(self, deadline: float) -> dict:
        import select

        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"{self.executable} did not answer within {self.timeout_s:g} s", source="browser")
            ready, _, _ = select.select([self._r], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._r.fileno(), 1 << 20)
            if not chunk:
                raise BrowserError(f"{self.executable} closed the DevTools pipe (crashed?)", source="browser")
            self._buf += chunk
        msg, _, self._buf = self._buf.partition(b"\0")
        return json.loads(msg)

    def _note(self, msg: dict) -> None:
        method, params = msg.get("method", ""), msg.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            self.console.append({"level": params.get("type", ""), "text": text})
        elif method == "Runtime.exceptionThrown":
            d = params.get("exceptionDetails", {})
            text = d.get("exception", {}).get("description", d.get("text", ""))
            self.console.append({"level": "error", "text": text})
        elif method == "Log.entryAdded":
            e = params.get("entry", {})
            self.console.append({"level": e.get("level", ""), "text": f"{e.get('source', '')}: {e.get('text', '')} "
                                                                      f"{e.get('url', '')}".strip()})
        self._events.append(msg)

    def call(self, method: str, params: Mapping[str, Any] | None = None, *, timeout_s: float | None = None) -> dict:
        """Send one DevTools command (to the page once attached) and return its result."""
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": dict(params or {})}
        if self._session and not method.startswith(("Target.", "Browser.")):
            msg["sessionId"] = self._session
        try:
            self._w.write(json.dumps(msg).encode("utf-8") + b"\0")
            self._w.flush()
        except OSError as exc:
            raise BrowserError(f"{self.executable} is not running ({exc.strerror})", source="browser") from None
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error'].get('message')}", source="browser")
                return reply.get("result", {})
            self._note(reply)

    def wait_event(self, method: str, *, timeout_s: float | None = None) -> dict:
        """Wait for (and consume) the first event ``method``."""
        for i, ev in enumerate(self._events):
            if ev.get("method") == method:
                return self._events.pop(i)
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while True:
            msg = self._read_message(deadline)
            self._note(msg)
            if msg.get("method") == method:
                self._events.remove(msg)
                return msg

    # --- page ------------------------------------------------------------------------------
    def set_viewport(self, width: int, height: int) -> None:
        """Emulate a ``width`` × ``height`` CSS-pixel screen."""
        self.width, self.height = width, height
        self.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                          "mobile": False})

    def open(self, path_or_url: str | Path) -> None:
        """Load a file (or URL) and wait for its load event (images included)."""
        url = str(path_or_url)
        if "://" not in url:
            url = Path(url).resolve().as_uri()
        self._events = [e for e in self._events if e.get("method") != "Page.loadEventFired"]
        result = self.call("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise BrowserError(f"cannot open: {result['errorText']}", source=url)
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        """Value of a JavaScript expression in the page (returned by value)."""
        r = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in r:
            raise BrowserError(f"script failed: {r['exceptionDetails'].get('text')}", source="browser")
        return r.get("result", {}).get("value")

    def emulate_media(self, media: str) -> None:
        """CSS media type: ``"print"`` or ``""`` (screen)."""
        self.call("Emulation.setEmulatedMedia", {"media": media})

    def screenshot(self, *, full_page: bool = False) -> bytes:
        """PNG of the viewport (or of the whole page)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            w, h = self.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            params.update(captureBeyondViewport=True, clip={"x": 0, "y": 0, "width": w, "height": h, "scale": 1})
        return base64.b64decode(self.call("Page.captureScreenshot", params)["data"])

    def print_pdf(self, *, footer: str = "") -> bytes:
        """The page printed to A4 PDF (print stylesheet, backgrounds, page numbers in the footer)."""
        import html as _html

        foot = (f'<div style="font-size:7px;width:100%;padding:0 11mm;color:#555;display:flex;'
                f'justify-content:space-between"><span>{_html.escape(footer)}</span><span>page '
                '<span class="pageNumber"></span> of <span class="totalPages"></span></span></div>')
        r = self.call("Page.printToPDF", {"paperWidth": A4_IN[0], "paperHeight": A4_IN[1], "printBackground": True,
                                          "preferCSSPageSize": True, "displayHeaderFooter": True,
                                          "headerTemplate": "<span></span>", "footerTemplate": foot},
                      timeout_s=max(self.timeout_s, 120.0))
        return base64.b64decode(r["data"])


def html_to_pdf(html_path: str | Path, pdf_path: str | Path | None = None, *, footer: str = "",
                executable: str | None = None) -> Path:
    """Print a report page to A4 PDF beside it (``report.pdf``) through headless Chromium; atomically.

    Raises
    ------
    BrowserError
        When no Chromium is installed (the message says how to install one) or it fails.
    """
    src = Path(html_path)
    out = Path(pdf_path) if pdf_path else src.with_suffix(".pdf")
    with Browser(executable) as b:
        b.open(src)
        data = b.print_pdf(footer=footer)
    return atomic_write_bytes(out, data)


def html_screenshot(html_path: str | Path, png_path: str | Path, *, width: int = 1400, height: int = 900,
                    full_page: bool = False, executable: str | None = None) -> Path:
    """PNG screenshot of a report page at ``width`` × ``height`` CSS px (the first screen by default)."""
    with Browser(executable, width=width, height=height) as b:
        b.open(html_path)
        data = b.screenshot(full_page=full_page)
    return atomic_write_bytes(png_path, data)


def pdf_beside(html_path: str | Path, *, footer: str = "", command: str = "report") -> int:
    """For the command line's ``--pdf``: write ``report.pdf`` beside ``html_path``; return an exit status.

    Prints where the PDF went, or one line saying why not (no Chromium: how to install it) and
    returns 2; the HTML report is kept either way.
    """
    import sys

    try:
        pdf = html_to_pdf(html_path, footer=footer)
    except BrowserError as exc:
        print(f"ludosimetry {command}: report.pdf not written ({exc}); {html_path} is complete", file=sys.stderr)
        return 2
    print(f"PDF: {pdf}")
    return 0
