"""
The Luma view in a real browser against a real api-server (issue #12): headless Chromium opens the
view, is sent to Airflow's login page, logs in through its form as a person would, and comes back to
a page whose every thumbnail decodes, streamed through the api-server with the session cookie; the
view also works inside Airflow's UI, in the frame of its navigation entry. Screenshots of both are
kept (``LUMA_SCREENSHOTS=<folder>`` keeps them there too: the README's picture is made so).
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from airflow_provider_luma.testing.airflow_services import AirflowServices
from airflow_provider_luma.testing.images import render
from tests.support import store_output

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.browser import Page

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.timeout(300)]

EMPTY_DAGS = "dags"
PASSWORD = "view-browser-password"
PROMPTS = {
    "spring-launch/20261201T000000/mug-hero.png": ("a speckled ceramic mug, hero banner", 512, 288),
    "spring-launch/20261201T000000/tote-social.png": ("a canvas tote bag with tulips, square post", 384, 384),
    "spring-launch/20261201T000000/shoes-story.png": ("mint-green running shoes, phone story", 288, 512),
}


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowServices]:
    root = tmp_path_factory.mktemp("view-browser")
    output = root / "output"
    for day, (name, (prompt, width, height)) in enumerate(PROMPTS.items(), start=1):
        store_output(
            output,
            name,
            generation_id=str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
            prompt=prompt,
            dag_id="luma_marketing_refresh",
            written_at=f"2026-12-0{day}T10:00:00+00:00",
            data=render(prompt, width, height, "png"),
        )
    (root / EMPTY_DAGS).mkdir()
    services = AirflowServices(
        home=root / "airflow-home",
        dags_folder=root / EMPTY_DAGS,
        login=("admin", PASSWORD),
        extra_env={"AIRFLOW__LUMA__OUTPUT_PATH": output.as_uri()},
    )
    try:
        services.start()
        yield services
    finally:
        services.stop()
        print(services.log_tails())


def _keep(screenshot: Path) -> None:
    if folder := os.environ.get("LUMA_SCREENSHOTS"):
        shutil.copy(screenshot, Path(folder) / screenshot.name)


def _log_in(page: Page, services: AirflowServices) -> None:
    page.goto(f"{services.base_url}/luma/")
    assert "/auth/login" in page.url, page.url
    page.wait_for("document.querySelector('input[name=password]') !== null")
    page.submit_form(
        {"input[name=username]": "admin", "input[name=password]": PASSWORD}, "button[type=submit]"
    )


def test_a_person_logs_in_and_sees_every_image_with_its_prompt(
    api_server: AirflowServices, browser_page: Page, tmp_path: Path
) -> None:
    _log_in(browser_page, api_server)
    browser_page.goto(f"{api_server.base_url}/luma/")
    assert browser_page.url.startswith(f"{api_server.base_url}/luma/"), browser_page.url
    browser_page.wait_for("Array.from(document.images).every(image => image.complete)")

    images = browser_page.images()
    assert len(images) == len(PROMPTS)
    assert [image.src for image in images if not image.loaded] == []
    assert {(image.natural_width, image.natural_height) for image in images} == {
        (width, height) for _, width, height in PROMPTS.values()
    }
    text = browser_page.text()
    assert all(prompt in text for prompt, _, _ in PROMPTS.values())
    screenshot = browser_page.screenshot(tmp_path / "luma-view.png")
    print(f"screenshot: {screenshot}")
    _keep(screenshot)


def test_the_view_works_inside_airflows_ui(
    api_server: AirflowServices, browser_page: Page, tmp_path: Path
) -> None:
    _log_in(browser_page, api_server)
    browser_page.goto(f"{api_server.base_url}/plugin/luma-images")
    # The UI shows the view in its frame, on the same origin, so the session cookie reaches it.
    loaded = browser_page.wait_for(
        """(() => { const frame = document.querySelector('iframe');
            const doc = frame && frame.contentDocument;
            const images = doc ? Array.from(doc.images) : [];
            return images.length > 0 && images.every(image => image.complete && image.naturalWidth > 0)
                ? images.length : null; })()"""
    )
    assert loaded == len(PROMPTS)
    screenshot = browser_page.screenshot(tmp_path / "luma-view-in-airflow.png")
    print(f"screenshot: {screenshot}")
    _keep(screenshot)
