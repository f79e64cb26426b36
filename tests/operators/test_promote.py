"""Publishing staged images: exactly the approved bytes, each with a record that says where it came from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_luma._compat import AirflowFailException
from airflow_provider_luma.catalog import entry_of
from airflow_provider_luma.operators.luma import LumaPromoteOutputsOperator
from tests.support import store_output, task_context

GENERATIONS = ["d290f1ee-6c54-4b01-90e6-d701748f0851", "0b7f6a3e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"]


@pytest.fixture
def staged(tmp_path: Path) -> list[dict[str, Any]]:
    staging = tmp_path / "out" / "staging" / "run-1"
    return [
        {
            "generation_id": gid,
            "outputs": [store_output(staging, f"{gid}-0.png", generation_id=gid, prompt=f"prompt {n}")],
        }
        for n, gid in enumerate(GENERATIONS)
    ]


def _promote(tmp_path: Path, uploads: Any, folder: str = "published/run-1") -> list[dict[str, Any]]:
    op = LumaPromoteOutputsOperator(
        task_id="publish", uploads=uploads, folder=folder, destination=str(tmp_path / "out")
    )
    return op.execute(task_context("publish"))


def test_each_approved_image_is_copied_with_a_record_of_its_new_place(
    tmp_path: Path, staged: list[dict[str, Any]]
) -> None:
    result = _promote(tmp_path, staged[:1])

    published = tmp_path / "out" / "published" / "run-1"
    [staged_entry] = staged[0]["outputs"]
    image = published / f"{GENERATIONS[0]}-0.png"
    assert result == [
        {
            "generation_id": GENERATIONS[0],
            "outputs": [
                {
                    **{key: staged_entry[key] for key in ("index", "sha256", "size", "content_type")},
                    "uri": image.as_uri(),
                    "metadata_uri": image.as_uri() + ".json",
                }
            ],
        }
    ]
    assert image.read_bytes() == Path(staged_entry["uri"].removeprefix("file://")).read_bytes()
    record = json.loads(Path(str(image) + ".json").read_text())
    assert record["uri"] == image.as_uri() and record["sha256"] == staged_entry["sha256"]
    assert record["promoted"]["from"] == staged_entry["uri"]
    assert record["promoted"]["task_id"] == "publish"
    # What made it is kept: the prompt and the task that uploaded it.
    assert record["request"]["prompt"] == "prompt 0" and record["airflow"]["task_id"] == "upload"
    # The Luma view finds it at its new place (the record names the bytes beside it).
    assert entry_of(_root(tmp_path), f"published/run-1/{image.name}.json")
    # Only the approved one was published.
    assert sorted(path.name for path in published.iterdir()) == [image.name, image.name + ".json"]


def _root(tmp_path: Path) -> Any:
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath((tmp_path / "out").as_uri())


def test_an_image_changed_after_staging_is_not_published(
    tmp_path: Path, staged: list[dict[str, Any]]
) -> None:
    Path(staged[1]["outputs"][0]["uri"].removeprefix("file://")).write_bytes(b"\x89PNG\r\n\x1a\nswapped")

    with pytest.raises(AirflowFailException, match="changed after it was staged"):
        _promote(tmp_path, staged)
    published = tmp_path / "out" / "published" / "run-1"
    names = sorted(path.name for path in published.iterdir())
    # The first (unchanged) one may be published; the changed one, nor its record, is not.
    assert not [name for name in names if name.startswith(GENERATIONS[1])]


def test_a_retry_skips_what_is_published_already(tmp_path: Path, staged: list[dict[str, Any]]) -> None:
    first = _promote(tmp_path, staged)
    image = tmp_path / "out" / "published" / "run-1" / f"{GENERATIONS[0]}-0.png"
    written = image.stat().st_mtime_ns
    assert _promote(tmp_path, staged) == first
    assert image.stat().st_mtime_ns == written


@pytest.mark.parametrize("folder", ["../outside", "/abs", "a//b"])
def test_a_folder_that_could_leave_the_destination_fails_the_dag_import(folder: str) -> None:
    with pytest.raises(ValueError, match=r"^folder: "):
        LumaPromoteOutputsOperator(task_id="publish", uploads=[], folder=folder)


def test_nothing_approved_publishes_nothing(tmp_path: Path) -> None:
    assert _promote(tmp_path, []) == []
    assert not (tmp_path / "out" / "published").exists()
