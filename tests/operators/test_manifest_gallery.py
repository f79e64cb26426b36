"""
The batch manifest and the gallery, on local storage: what is written, what is refused, what is shown.

The images and records are written the way the upload writes them (an image, then ``<image>.json``);
the operators' ``execute`` runs with the parts of a context they read.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_luma._compat import AirflowFailException, AirflowSkipException
from airflow_provider_luma.gallery import link_from, task_link
from airflow_provider_luma.operators.luma import LumaGalleryOperator, LumaPublishManifestOperator
from tests.support import store_output, task_context

GENERATIONS = ["d290f1ee-6c54-4b01-90e6-d701748f0851", "0b7f6a3e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"]
HOSTILE_PROMPT = 'a <script>alert("x")</script> mug & "friends"'


@pytest.fixture
def uploads(tmp_path: Path) -> list[dict[str, Any]]:
    """Two mapped uploads: one generation with two outputs (priced once), one unpriced."""
    run = tmp_path / "out" / "campaign" / "run-1"
    first = [
        store_output(
            run,
            f"{GENERATIONS[0]}-{index}.png",
            generation_id=GENERATIONS[0],
            index=index,
            prompt=HOSTILE_PROMPT,
        )
        for index in (0, 1)
    ]
    second = [
        store_output(
            run, f"{GENERATIONS[1]}-0.png", generation_id=GENERATIONS[1], prompt="a tote bag", cost=None
        )
    ]
    return [
        {"generation_id": GENERATIONS[0], "outputs": first},
        {"generation_id": GENERATIONS[1], "outputs": second},
    ]


class _OutletEvents(dict[str, SimpleNamespace]):
    """Airflow's outlet event accessors, by Asset name (an Asset is no dict key on Airflow 3.1)."""

    def __getitem__(self, asset: Any) -> SimpleNamespace:
        return self.setdefault(asset.name, SimpleNamespace(extra={}))


def _context() -> dict[str, Any]:
    context = task_context("publish_manifest")
    context["outlet_events"] = _OutletEvents()
    return context


def _manifest_op(tmp_path: Path, uploads: Any, **kwargs: Any) -> LumaPublishManifestOperator:
    return LumaPublishManifestOperator(
        task_id="publish_manifest",
        uploads=uploads,
        destination=str(tmp_path / "out"),
        file_name="campaign/run-1/manifest.json",
        **kwargs,
    )


def test_the_manifest_names_every_image_and_counts_each_generation_once(
    tmp_path: Path, uploads: list[dict[str, Any]]
) -> None:
    from airflow.sdk import Asset

    asset = Asset("campaign_batch")
    context = _context()
    summary = _manifest_op(tmp_path, uploads, outlets=[asset]).execute(context)

    path = tmp_path / "out" / "campaign" / "run-1" / "manifest.json"
    expected = {"manifest_uri": path.as_uri(), "images": 3, "generations": 2, "estimated_cost_usd": 0.0404}
    assert summary == expected
    # The one Asset event of the batch carries the same small summary, nothing per image.
    assert context["outlet_events"][asset].extra == expected
    manifest = json.loads(path.read_text())
    assert [(image["generation_id"], image["index"]) for image in manifest["images"]] == [
        (GENERATIONS[0], 0),
        (GENERATIONS[0], 1),
        (GENERATIONS[1], 0),
    ]
    assert manifest["unpriced_generations"] == 1
    assert manifest["run"] == {"dag_id": "unit", "run_id": "manual__1", "task_id": "publish_manifest"}
    assert not list(path.parent.glob(".*")), "a partial file was left"


def test_a_record_that_no_longer_describes_its_image_refuses_the_batch(
    tmp_path: Path, uploads: list[dict[str, Any]]
) -> None:
    # The second image was replaced after its upload: its record names other bytes now.
    record_path = Path(uploads[1]["outputs"][0]["metadata_uri"].removeprefix("file://"))
    record = json.loads(record_path.read_text())
    record_path.write_text(json.dumps({**record, "sha256": "0" * 64}))

    with pytest.raises(AirflowFailException, match="no longer describes") as failure:
        _manifest_op(tmp_path, uploads).execute(_context())
    assert record_path.as_uri() in str(failure.value)
    assert not (tmp_path / "out" / "campaign" / "run-1" / "manifest.json").exists()


def test_a_missing_record_refuses_the_batch(tmp_path: Path, uploads: list[dict[str, Any]]) -> None:
    Path(uploads[0]["outputs"][1]["metadata_uri"].removeprefix("file://")).unlink()
    with pytest.raises(AirflowFailException, match="has no metadata record"):
        _manifest_op(tmp_path, uploads).execute(_context())


def test_no_image_means_no_batch_is_announced(tmp_path: Path) -> None:
    with pytest.raises(AirflowSkipException):
        _manifest_op(tmp_path, [{"generation_id": GENERATIONS[0], "outputs": []}]).execute(_context())


@pytest.mark.parametrize("uploads_value", ["s3://bucket/x.png", [{"outputs": "x"}], 42])
def test_uploads_of_another_shape_are_refused_naming_the_parameter(
    tmp_path: Path, uploads_value: Any
) -> None:
    with pytest.raises(
        AirflowFailException, match="uploads: expected the result of LumaUploadOutputsOperator"
    ):
        _manifest_op(tmp_path, uploads_value).execute(_context())


@pytest.mark.parametrize("name", ["../manifest.json", "/abs/manifest.json", "a//b.json", "a\\b.json"])
def test_a_manifest_name_that_could_leave_the_destination_fails_the_dag_import(name: str) -> None:
    with pytest.raises(ValueError, match="file_name"):
        LumaPublishManifestOperator(task_id="m", uploads=[], file_name=name)


def test_a_rendered_manifest_name_is_checked_too(tmp_path: Path, uploads: list[dict[str, Any]]) -> None:
    op = _manifest_op(tmp_path, uploads)
    op.file_name = "../escape.json"  # as a template could render it
    with pytest.raises(AirflowFailException, match=r"'\.\.' segment"):
        op.execute(_context())
    assert not (tmp_path / "escape.json").exists()


# --- the gallery ---------------------------------------------------------------------------------


class _Page(HTMLParser):
    """The page's image sources, links and visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []
        self.text: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            self.images.append(str(values["src"]))
        elif tag == "a":
            self.links.append(str(values["href"]))
        elif tag == "script":
            self.scripts += 1

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _gallery(tmp_path: Path, uploads: list[dict[str, Any]], **kwargs: Any) -> tuple[dict[str, Any], _Page]:
    summary = _manifest_op(tmp_path, uploads).execute(_context())
    result = LumaGalleryOperator(task_id="gallery", manifest=summary["manifest_uri"], **kwargs).execute(
        task_context("gallery")
    )
    page = _Page()
    page.feed(Path(result["gallery_uri"].removeprefix("file://")).read_text())
    return result, page


def test_the_gallery_shows_every_image_beside_it_with_its_facts(
    tmp_path: Path, uploads: list[dict[str, Any]]
) -> None:
    result, page = _gallery(tmp_path, uploads, title="Spring <launch>")

    folder = tmp_path / "out" / "campaign" / "run-1"
    assert result == {
        "gallery_uri": (folder / "index.html").as_uri(),
        "manifest_uri": (folder / "manifest.json").as_uri(),
        "images": 3,
    }
    # Relative links: the folder opens from disk or any static host, and each names a stored image.
    assert page.images == [Path(entry["uri"]).name for upload in uploads for entry in upload["outputs"]]
    assert all((folder / src).is_file() for src in page.images)
    text = " ".join(page.text)
    # The prompt is shown as text (escaped in the source): no script came in with it.
    assert HOSTILE_PROMPT in text and page.scripts == 0
    assert "Spring <launch>" in text
    for upload in uploads:
        for entry in upload["outputs"]:
            assert entry["sha256"] in text
    assert "0.0404 USD (list price)" in text and "not priced" in text
    assert "9:16" in text and "refresh / manual__1 / upload [1]" in text


def test_the_gallery_links_each_image_to_its_task_in_airflows_ui(
    tmp_path: Path, uploads: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.example.com:8080/")
    _, page = _gallery(tmp_path, uploads)
    assert "http://airflow.example.com:8080/dags/refresh/runs/manual__1/tasks/upload/mapped/1" in page.links


def _event(uri: str | None, minute: int) -> SimpleNamespace:
    extra = {"manifest_uri": uri} if uri else {}
    return SimpleNamespace(extra=extra, timestamp=datetime(2026, 12, 1, 10, minute, tzinfo=timezone.utc))


def test_an_asset_triggered_gallery_shows_the_newest_announced_batch(
    tmp_path: Path, uploads: list[dict[str, Any]]
) -> None:
    summary = _manifest_op(tmp_path, uploads).execute(_context())
    context = task_context("gallery")
    context["triggering_asset_events"] = {
        "campaign_batch": [
            _event("file:///nowhere/old-manifest.json", 1),
            _event(summary["manifest_uri"], 5),
            _event(None, 9),  # an event of another producer, without a manifest
        ]
    }
    result = LumaGalleryOperator(task_id="gallery").execute(context)
    assert result["manifest_uri"] == summary["manifest_uri"] and result["images"] == 3


def test_a_gallery_without_a_manifest_says_how_to_give_one() -> None:
    with pytest.raises(AirflowFailException, match="manifest: not given, and no Asset event"):
        LumaGalleryOperator(task_id="gallery").execute(task_context("gallery"))


def test_a_gallery_of_a_file_that_is_no_manifest_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text("{}")
    with pytest.raises(AirflowFailException, match="is no Luma batch manifest"):
        LumaGalleryOperator(task_id="gallery", manifest=other.as_uri()).execute(task_context("gallery"))
    assert not (tmp_path / "index.html").exists()


@pytest.mark.parametrize(
    ("page", "target", "expected"),
    [
        ("file:///data/run/index.html", "file:///data/run/a.png", "a.png"),
        ("file:///data/run/index.html", "file:///data/other/a b.png", "../other/a%20b.png"),
        ("s3://bucket/run/index.html", "s3://bucket/run/x/a.png", "x/a.png"),
        ("s3://bucket/run/index.html", "s3://other/run/a.png", "s3://other/run/a.png"),
        ("file:///data/index.html", "s3://bucket/a.png", "s3://bucket/a.png"),
    ],
)
def test_links_are_relative_within_one_store(page: str, target: str, expected: str) -> None:
    assert link_from(page, target) == expected


def test_no_task_link_without_a_base_url() -> None:
    from airflow_provider_luma.gallery import GalleryImage

    image = GalleryImage(
        src="a.png",
        uri="file:///a.png",
        prompt="p",
        type="image",
        model="uni-1",
        aspect_ratio="1:1",
        layer=None,
        sha256="0" * 64,
        size=1,
        estimated_cost_usd=None,
        generation_id=GENERATIONS[0],
        created_at="",
        dag_id="d",
        run_id="scheduled__2026-12-01T00:00:00+00:00",
        task_id="t",
        map_index=-1,
    )
    assert task_link("", image) is None
    assert (
        task_link("http://h/", image)
        == "http://h/dags/d/runs/scheduled__2026-12-01T00%3A00%3A00%2B00%3A00/tasks/t"
    )
