"""
A pytest plugin for the official SDK's *own* test run, which ``test_sdk_suite.py`` starts in a subprocess.

It is not a test module and our suite never imports it: ``test_sdk_suite.py`` copies this file into a
scratch directory on the subprocess's ``PYTHONPATH`` and loads it with ``-p luma_sdk_suite_shim``. It cannot
be imported from here, because in that run the ``tests`` package is the SDK's, not ours. So it uses only the
standard library and pytest.

The shim does three things that the SDK's files cannot be asked to do, and it edits none of them:

- It gives the SDK's clients the emulator's key. ``tests/conftest.py`` hard-codes ``auth_token = "My Auth
  Token"``. A Prism schema mock takes that token, but the emulator, like the real API, wants
  ``Bearer luma-api-...``. The shim replaces that module global as soon as pytest registers the conftest,
  before any fixture reads it.
- It resets the emulator before each test and counts the ``/v1`` requests the test made. The parent uses the
  count to tell tests that reached the server from tests the SDK decided on the client side. The reset also
  keeps each test from seeing another test's generations, files or rate window: the suite creates more
  generations than the emulator's default 30 RPM allows.
- It writes each test's outcome, with the one-line error, to a JSON report that the parent reads.

Its settings come from environment variables, because ``-p`` plugins take no arguments.
"""

from __future__ import annotations

import json
import os
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Generator

#: The token the SDK's conftest hard-codes. If a new SDK version changes it, stop; do not guess.
SDK_PLACEHOLDER_TOKEN = "My Auth Token"

_API_KEY = os.environ["LUMA_SDK_SUITE_API_KEY"]
_CONTROL_URL = os.environ["LUMA_SDK_SUITE_CONTROL_URL"]
_REPORT = os.environ["LUMA_SDK_SUITE_REPORT"]

_auth_token_patched = False
_requests: dict[str, int] = {}
# nodeid -> {"outcome": passed|failed|error|skipped, "message": one line}; the first phase that did not
# pass decides it.
_results: dict[str, dict[str, str]] = {}


def pytest_plugin_registered(plugin: object) -> None:
    """Point the SDK conftest's clients at the emulator's key the moment that conftest is registered."""
    global _auth_token_patched
    if getattr(plugin, "__name__", None) != "tests.conftest":
        return
    found = getattr(plugin, "auth_token", None)
    if found != SDK_PLACEHOLDER_TOKEN:
        raise pytest.UsageError(
            f"tests/conftest.py's auth_token is {found!r}, not {SDK_PLACEHOLDER_TOKEN!r}: "
            "the SDK changed how its tests authenticate, so update luma_sdk_suite_shim"
        )
    plugin.auth_token = _API_KEY  # type: ignore[attr-defined]
    _auth_token_patched = True


def pytest_collection_finish(session: pytest.Session) -> None:
    """Refuse to run unpatched. Every server-backed test would get a 401, which reads like an emulator bug."""
    if not _auth_token_patched:
        raise pytest.UsageError("tests/conftest.py was never registered: cannot give its clients the key")


def _control(method: str, path: str) -> Any:
    # The standard library, not httpx: this must not share the pools or transports of the httpx and aiohttp
    # clients under test, nor pass through respx, which the SDK's other tests use to patch httpx.
    request = urllib.request.Request(
        f"{_CONTROL_URL}{path}", method=method, data=b"" if method == "POST" else None
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """Reset the emulator just before the test body runs, and count the ``/v1`` requests that body makes."""
    _control("POST", "/reset")
    try:
        return (yield)
    finally:
        stats = _control("GET", "/stats")
        _requests[item.nodeid] = sum(stats["requests"].values())


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.nodeid in _results and _results[report.nodeid]["outcome"] != "passed":
        return
    if report.passed and report.when != "call":
        _results.setdefault(report.nodeid, {"outcome": "passed", "message": ""})
        return
    if report.passed:
        outcome = "passed"
    elif report.skipped:
        outcome = "skipped"
    else:
        outcome = "failed" if report.when == "call" else "error"
    crash = getattr(report.longrepr, "reprcrash", None)
    message = crash.message if crash is not None else str(report.longrepr or "")
    _results[report.nodeid] = {"outcome": outcome, "message": message.splitlines()[0] if message else ""}


def pytest_sessionfinish(session: pytest.Session) -> None:
    with open(_REPORT, "w", encoding="utf-8") as report:
        json.dump(
            {"auth_token_patched": _auth_token_patched, "results": _results, "requests": _requests},
            report,
            indent=1,
            sort_keys=True,
        )
