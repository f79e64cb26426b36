"""
The campaign gallery in a real browser (issue #11): the page the example DAGs write, opened from disk
in headless Chromium, shows every image of its batch, decoded, with the prompt that made it.

The HTML tests (test_example_dags.py) prove the page names the right files; only a browser proves the
links resolve from where the page lies and the images decode. A control removes one image file from
a copy of the same page, so the check is seen to catch a broken image rather than pass on any page.
"""

from __future__ import annotations

import json
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import pytest

from tests.support import run_dag, use_output_folder, xcom

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_luma.testing import LumaEmulator
    from tests.browser import ImageState, Page

pytestmark = pytest.mark.browser

EXAMPLE_DAGS = Path(__file__).resolve().parents[1] / "example_dags"
#: Enough cards for a row of the grid and a second one, few enough to keep the DAG runs short.
IMAGES = 3


@dataclass(frozen=True)
class CampaignGallery:
    """The gallery page a refresh and its gallery DAG wrote, and the batch it should show."""

    page: Path
    #: The manifest's images (``uri``, ``metadata_uri``, ...), in the manifest's order.
    images: list[dict[str, Any]]
    #: The prompt of each image, from its metadata record, in the same order.
    prompts: list[str]


def _path(uri: str) -> Path:
    return Path(unquote(urlsplit(uri).path))


def _png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk: what the browser should decode."""
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), path
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _broken(images: list[ImageState]) -> list[str]:
    return [image.src for image in images if not image.loaded]


@pytest.fixture(scope="module")
def campaign_gallery(
    airflow_db: Path, luma_emulator_server: LumaEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CampaignGallery]:
    """
    The refresh (a trial of :data:`IMAGES` images), then the gallery of its batch, each in
    ``dag.test()`` against the emulator: run once for this module, as the tests only read the page
    (the runs take about 7 s). Module-scoped, so the function-scoped ``luma_connection`` and
    ``output_path`` cannot serve; their settings are made here, undone after the module.
    """
    luma_emulator_server.reset()
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("AIRFLOW_CONN_LUMA_DEFAULT", luma_emulator_server.connection_json())
        use_output_folder(monkeypatch, tmp_path_factory.mktemp("gallery") / "outputs")
        refresh = run_dag(
            monkeypatch,
            EXAMPLE_DAGS / "luma_marketing_refresh.py",
            "luma_marketing_refresh",
            conf={"max_images": IMAGES},
        )
        assert refresh.state == "success", {key: ti.state for key, ti in refresh.tis.items()}
        manifest_uri = xcom(refresh.tis[("publish_manifest", -1)])["manifest_uri"]
        gallery = run_dag(
            monkeypatch,
            EXAMPLE_DAGS / "luma_campaign_gallery.py",
            "luma_campaign_gallery",
            conf={"manifest_uri": manifest_uri},
        )
        assert gallery.state == "success", {key: ti.state for key, ti in gallery.tis.items()}
        page = _path(xcom(gallery.tis[("build_gallery", -1)])["gallery_uri"])
        images = json.loads(_path(manifest_uri).read_text())["images"]
        prompts = [
            json.loads(_path(image["metadata_uri"]).read_text())["request"]["prompt"] for image in images
        ]
        assert len(images) == IMAGES and len(set(prompts)) == IMAGES
        yield CampaignGallery(page=page, images=images, prompts=prompts)


def test_the_gallery_shows_every_image_of_its_batch(
    campaign_gallery: CampaignGallery, browser_page: Page, tmp_path: Path
) -> None:
    browser_page.goto(campaign_gallery.page.as_uri())
    screenshot = browser_page.screenshot(tmp_path / "gallery.png")
    print(f"screenshot of the gallery: {screenshot}")

    images = browser_page.images()
    # One image per manifest entry, in its order, each link resolved to the stored file.
    assert [image.src for image in images] == [image["uri"] for image in campaign_gallery.images]
    assert _broken(images) == []
    # Decoded at the stored file's own size: these are the stored bytes, not a placeholder.
    assert [(image.natural_width, image.natural_height) for image in images] == [
        _png_size(_path(image["uri"])) for image in campaign_gallery.images
    ]
    assert browser_page.evaluate("document.querySelectorAll('figure.card').length") == IMAGES
    text = browser_page.text()
    for prompt in campaign_gallery.prompts:
        assert prompt in text
    # Nothing (a long prompt, a checksum) pushes the page wider than the window.
    assert browser_page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_an_image_missing_from_the_folder_is_reported_as_not_loaded(
    campaign_gallery: CampaignGallery, browser_page: Page, tmp_path: Path
) -> None:
    copy = Path(shutil.copytree(campaign_gallery.page.parent, tmp_path / "gallery"))
    missing = copy / _path(campaign_gallery.images[1]["uri"]).name
    missing.unlink()

    browser_page.goto((copy / campaign_gallery.page.name).as_uri())

    images = browser_page.images()
    assert len(images) == IMAGES
    assert _broken(images) == [missing.as_uri()]
