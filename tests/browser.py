"""
A small browser harness for tests: headless Chromium driven over the Chrome DevTools Protocol.

Pages people look at (the static gallery, the Luma view on the api-server) are checked where they are
rendered, in a real browser: does every image load, does the text say what it should, does the page
look sane in a screenshot. The protocol is spoken directly, over the websocket client that is
already installed (``websockets``), rather than through Playwright (a 160 MB wheel bundling a Node.js
driver) or Selenium (fourteen packages, plus Debian's chromedriver): the few calls these tests need
fit in this file. Chromium itself is Debian's package, which ``make browser`` installs where it can.

Registered as a pytest plugin by ``tests/conftest.py``; the fixtures:

* ``chromium_executable``: its path, or a clean skip (with the reason) where none is installed;
* ``chromium``: one headless Chromium for the session;
* ``browser_page``: a fresh tab in its own browser context (no cookies or storage shared with any
  other test), closed after the test whatever happened.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from pathlib import Path

#: Where to look for Chromium: ``$LUMA_TEST_CHROMIUM`` first, then these names on the PATH.
CHROMIUM_NAMES = ("chromium", "chromium-browser")
#: Seconds any one step (start, navigation, a wait in the page) may take before the test fails.
TIMEOUT = 30.0
VIEWPORT = (1280, 900)

# Headless, and quiet on a machine whose network is closed: without the background-networking flags
# Chromium keeps dialling Google's services, and each refused connection is logged. --no-sandbox:
# CI runs as root, where Chromium's sandbox refuses to start. --disable-dev-shm-usage: containers
# often give /dev/shm 64 MB, too little for a renderer; /tmp is used instead.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--mute-audio",
    f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}",
    # Port 0: the system picks a free port, which Chromium prints; parallel sessions never collide.
    "--remote-debugging-port=0",
)


class BrowserError(RuntimeError):
    """Chromium did not start, a protocol call failed, or the page did not do what was asked."""


def find_chromium() -> str | None:
    """The Chromium executable to test with, or ``None`` when this machine has none."""
    configured = os.environ.get("LUMA_TEST_CHROMIUM")
    if configured:
        return configured
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


@dataclass(frozen=True)
class ImageState:
    """What the page's DOM says of one ``<img>``: a broken image is ``complete`` with no width."""

    src: str
    alt: str
    complete: bool
    natural_width: int
    natural_height: int

    @property
    def loaded(self) -> bool:
        return self.complete and self.natural_width > 0


class DevTools:
    """
    One websocket to the browser, flat sessions: each call names the tab (``session``) it is for.

    The protocol interleaves replies with events; every event received is kept, in order, so a
    caller can take a mark before it acts and then wait for an event that came after the mark, even
    one that arrived while this waited for an unrelated reply.
    """

    def __init__(self, url: str) -> None:
        from websockets.sync.client import connect

        # No proxy: the browser is on loopback, whatever the environment says for other hosts.
        self._socket = connect(url, max_size=None, open_timeout=TIMEOUT, proxy=None)
        self._last_id = 0
        self._events: list[dict[str, Any]] = []

    def close(self) -> None:
        self._socket.close()

    def call(
        self, method: str, params: Mapping[str, Any] | None = None, *, session: str | None = None
    ) -> dict[str, Any]:
        """Send one command and return its result; a protocol error raises :class:`BrowserError`."""
        self._last_id += 1
        message: dict[str, Any] = {"id": self._last_id, "method": method, "params": dict(params or {})}
        if session:
            message["sessionId"] = session
        self._socket.send(json.dumps(message))
        deadline = time.monotonic() + TIMEOUT
        while True:
            reply = self._receive(deadline, waiting_for=method)
            if reply.get("id") == self._last_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error'].get('message')}")
                result: dict[str, Any] = reply.get("result", {})
                return result

    def mark(self) -> int:
        """A point in the event stream, for :meth:`wait_event`."""
        return len(self._events)

    def wait_event(self, method: str, *, session: str, since: int) -> dict[str, Any]:
        """The first ``method`` event of ``session`` received after ``since``, waiting if need be."""
        deadline = time.monotonic() + TIMEOUT
        index = since
        while True:
            for event in self._events[index:]:
                index += 1
                if event["method"] == method and event.get("sessionId") == session:
                    return event
            self._receive(deadline, waiting_for=method)

    def _receive(self, deadline: float, *, waiting_for: str) -> dict[str, Any]:
        remaining = deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise TimeoutError
            message: dict[str, Any] = json.loads(self._socket.recv(timeout=remaining))
        except TimeoutError:
            raise BrowserError(f"no answer to {waiting_for} in {TIMEOUT:.0f} s") from None
        if "method" in message:
            self._events.append(message)
        return message


class Page:
    """One tab. Every method waits for what it does to finish (or fails after :data:`TIMEOUT`)."""

    def __init__(self, devtools: DevTools, session: str) -> None:
        self._devtools = devtools
        self._session = session

    def call(self, method: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self._devtools.call(method, params, session=self._session)

    def goto(self, url: str) -> None:
        """Open ``url`` and wait for its load event (every image loaded or failed by then)."""
        since = self._devtools.mark()
        result = self.call("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise BrowserError(f"opening {url}: {result['errorText']}")
        self._devtools.wait_event("Page.loadEventFired", session=self._session, since=since)

    @property
    def url(self) -> str:
        return str(self.evaluate("location.href"))

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (a promise is awaited)."""
        result = self.call(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise BrowserError(details.get("exception", {}).get("description") or details.get("text"))
        return result["result"].get("value")

    def wait_for(self, expression: str) -> Any:
        """
        Wait, in the page, until ``expression`` is truthy, and return its value: for what a script
        renders after the load event (a single-page app's form, say).
        """
        # The page polls itself; this process only waits for the promise's answer. The page gives up
        # first, so the failure names the expression rather than a silent protocol call.
        give_up = json.dumps(f"timed out waiting for {expression}")
        return self.evaluate(
            f"""new Promise((resolve, reject) => {{
                const deadline = performance.now() + {(TIMEOUT - 2) * 1000};
                const check = () => {{
                    const value = ({expression});
                    if (value) resolve(value);
                    else if (performance.now() > deadline) reject(new Error({give_up}));
                    else setTimeout(check, 20);
                }};
                check();
            }})"""
        )

    def _element_centre(self, selector: str) -> dict[str, float]:
        """Wait for the element, scroll it into view, and return its centre in the viewport."""
        found = json.dumps(selector)
        self.wait_for(f"document.querySelector({found}) !== null")
        centre: dict[str, float] = self.evaluate(
            f"""(() => {{
                const element = document.querySelector({found});
                element.scrollIntoView({{block: "center", inline: "center"}});
                const box = element.getBoundingClientRect();
                return {{x: box.left + box.width / 2, y: box.top + box.height / 2}};
            }})()"""
        )
        return centre

    def click(self, selector: str) -> None:
        """A real mouse click at the element's centre: what covers the element gets the click instead."""
        centre = self._element_centre(selector)
        for kind in ("mousePressed", "mouseReleased"):
            self.call(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": centre["x"], "y": centre["y"], "button": "left", "clickCount": 1},
            )

    def fill(self, selector: str, text: str) -> None:
        """
        Replace the field's text as typing would: focused, selected, then inserted through the input
        pipeline, so a framework that listens to input events (React's login form) sees it.
        """
        self.click(selector)
        self.evaluate(f"document.querySelector({json.dumps(selector)}).select()")
        self.call("Input.insertText", {"text": text})

    def submit_form(self, fields: Mapping[str, str], submit: str) -> None:
        """Fill each field (by selector), click ``submit`` and wait for the page that answers."""
        since = self._devtools.mark()
        for selector, text in fields.items():
            self.fill(selector, text)
        self.click(submit)
        self._devtools.wait_event("Page.loadEventFired", session=self._session, since=since)

    def text(self) -> str:
        """The page's visible text, as a reader sees it (hidden elements left out)."""
        return str(self.evaluate("document.body.innerText"))

    def images(self) -> list[ImageState]:
        """Every ``<img>`` of the page, in document order, with its absolute ``src``."""
        states = self.evaluate(
            """Array.from(document.images, image => ({
                src: image.currentSrc || image.src, alt: image.alt, complete: image.complete,
                natural_width: image.naturalWidth, natural_height: image.naturalHeight}))"""
        )
        return [ImageState(**state) for state in states]

    def screenshot(self, path: Path) -> Path:
        """The whole page, not just the viewport, as a PNG at ``path``."""
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        data = self.call(
            "Page.captureScreenshot", {"format": "png", "clip": clip, "captureBeyondViewport": True}
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data["data"]))
        return path


class Chromium:
    """A running headless Chromium, its DevTools connection, and a way to open isolated tabs."""

    def __init__(self, process: subprocess.Popen[bytes], devtools: DevTools, log: Path) -> None:
        self.process = process
        self.devtools = devtools
        self.log = log

    @contextmanager
    def new_page(self) -> Iterator[Page]:
        """A tab in a fresh browser context (its own cookies and storage); closed on the way out."""
        context = self.devtools.call("Target.createBrowserContext", {"disposeOnDetach": True})[
            "browserContextId"
        ]
        try:
            target = self.devtools.call(
                "Target.createTarget", {"url": "about:blank", "browserContextId": context}
            )["targetId"]
            session = self.devtools.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
                "sessionId"
            ]
            page = Page(self.devtools, session)
            page.call("Page.enable")
            # A fixed viewport and scale: screenshots of one page are alike from run to run.
            width, height = VIEWPORT
            page.call(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            )
            yield page
        finally:
            with suppress(BrowserError):
                self.devtools.call("Target.disposeBrowserContext", {"browserContextId": context})


@contextmanager
def launch(executable: str, profile: Path) -> Iterator[Chromium]:
    """
    Start headless Chromium on a fresh profile folder and connect to it; whatever happens inside the
    block, the browser and every process it started are gone when it ends.
    """
    profile.mkdir(parents=True, exist_ok=True)
    log = profile.parent / f"{profile.name}.log"
    # Its own process group, so the renderer and helper processes can be ended with it if it hangs.
    process = subprocess.Popen(
        [executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    devtools = None
    try:
        url = _devtools_url(process, log)
        devtools = DevTools(url)
        yield Chromium(process, devtools, log)
    finally:
        _stop(process, devtools)


def _devtools_url(process: subprocess.Popen[bytes], log: Path) -> str:
    """
    The browser's websocket address, which Chromium prints on stderr once it listens. A thread keeps
    reading stderr into ``log`` for the browser's whole life, so a chatty browser never blocks on a
    full pipe.
    """
    assert process.stderr is not None
    stderr = process.stderr
    found: list[str] = []
    ready = threading.Event()

    def read() -> None:
        with log.open("wb") as sink:
            for line in stderr:
                sink.write(line)
                sink.flush()
                if not found and line.startswith(b"DevTools listening on "):
                    found.append(line.split(b" on ", 1)[1].strip().decode())
                    ready.set()
        ready.set()  # stderr closed: the browser exited before it listened

    threading.Thread(target=read, name="chromium-stderr", daemon=True).start()
    if not ready.wait(TIMEOUT) or not found:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise BrowserError(f"Chromium did not start (exit code {process.poll()}); its log ends:\n{tail}")
    return found[0]


def _stop(process: subprocess.Popen[bytes], devtools: DevTools | None) -> None:
    """Ask the browser to close; end its process group if it does not within a few seconds."""
    if devtools is not None:
        with suppress(Exception):
            devtools.call("Browser.close")
        with suppress(Exception):
            devtools.close()
    try:
        process.wait(timeout=5)  # a clean exit takes its helper processes with it
    except subprocess.TimeoutExpired:
        # Hung: end the whole group this process started (renderers, GPU and network helpers), while
        # its leader is still alive, so the group's id cannot have been reused by anything else.
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


# --- pytest fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    """The Chromium to test with; the test skips, saying why, where none is installed."""
    executable = find_chromium()
    if executable is None:
        pytest.skip(
            f"no Chromium: none of {', '.join(CHROMIUM_NAMES)} on the PATH and LUMA_TEST_CHROMIUM unset "
            "(`make browser` installs Debian's chromium where it runs as root with apt-get)"
        )
    return executable


@pytest.fixture(scope="session")
def chromium(chromium_executable: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    """One headless Chromium for the session's browser tests, started when the first one asks."""
    with launch(chromium_executable, tmp_path_factory.mktemp("chromium") / "profile") as browser:
        yield browser


@pytest.fixture
def browser_page(chromium: Chromium) -> Iterator[Page]:
    """A fresh, isolated tab in the session's Chromium."""
    with chromium.new_page() as page:
        yield page
