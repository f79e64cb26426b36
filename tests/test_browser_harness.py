"""
The browser harness itself (tests/browser.py), on small pages of its own: what the gallery test uses
and what the api-server tests will (a login form rendered by a script, then a new page), and that the
browser is gone after a block that failed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.browser import BrowserError, launch

if TYPE_CHECKING:
    from pathlib import Path

    from tests.browser import Page

pytestmark = pytest.mark.browser

# A login form that exists only once a script has run, as in a single-page app, with fields that
# already hold text (typing must replace it), and that counts the input events it sees: a framework
# such as React learns of typing only through them.
LOGIN_PAGE = """<!DOCTYPE html>
<html><body><div id="app"></div>
<script>
  let inputs = 0;
  setTimeout(() => {
    document.getElementById("app").innerHTML = `
      <form method="get" action="done.html">
        <input id="username" name="username" value="stale">
        <input id="password" name="password" type="password">
        <input type="hidden" name="inputs" id="inputs">
        <button id="login" type="submit">Sign in</button>
      </form>`;
    document.querySelector("form").addEventListener("input", () => {
      document.getElementById("inputs").value = ++inputs;
    });
  }, 100);
</script></body></html>
"""


def test_a_form_rendered_by_a_script_is_filled_as_typed_and_submitted(
    browser_page: Page, tmp_path: Path
) -> None:
    (tmp_path / "login.html").write_text(LOGIN_PAGE)
    (tmp_path / "done.html").write_text("<!DOCTYPE html><p>Welcome</p>")
    browser_page.goto((tmp_path / "login.html").as_uri())

    browser_page.submit_form({"#username": "admin", "#password": "s3cret pass"}, submit="#login")

    landed = urlsplit(browser_page.url)
    assert landed.path.endswith("/done.html")
    assert parse_qs(landed.query) == {"username": ["admin"], "password": ["s3cret pass"], "inputs": ["2"]}
    assert browser_page.text() == "Welcome"


def test_a_page_that_cannot_be_opened_raises(browser_page: Page, tmp_path: Path) -> None:
    with pytest.raises(BrowserError, match="ERR_FILE_NOT_FOUND"):
        browser_page.goto((tmp_path / "absent.html").as_uri())


def test_the_browser_is_closed_when_the_block_fails(chromium_executable: str, tmp_path: Path) -> None:
    with (
        pytest.raises(RuntimeError, match="the test failed"),
        launch(chromium_executable, tmp_path / "profile") as browser,
    ):
        raise RuntimeError("the test failed")
    assert browser.process.poll() is not None
