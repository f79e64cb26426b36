"""
Real Airflow runs (``dag.test()``) of uploads: Asset events in the metadata DB, mapping over generate
results, the metadata record's Airflow ids, a second run that skips, and the example DAG end to end.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.support import complete_events, completed_generation, run_dag

pytestmark = pytest.mark.usefixtures("airflow_db", "luma_connection")

TESTS_DAGS = Path(__file__).resolve().parents[1] / "dags"
EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"


def _asset_events(dag_id: str, run_id: str) -> list[tuple[str, str, int, dict]]:
    """(task_id, asset uri, map index, extra) of every Asset event the run produced."""
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        events = session.query(AssetEvent).filter_by(source_dag_id=dag_id, source_run_id=run_id).all()
        return [(e.source_task_id, e.asset.uri, e.source_map_index, dict(e.extra)) for e in events]


def test_assets_alias_mapping_and_retry(luma_emulator, luma_connection, monkeypatch, tmp_path):
    single = completed_generation(luma_connection, prompt="a poster of a lighthouse")
    mapped = [completed_generation(luma_connection, prompt=f"a {colour} kite") for colour in ("red", "blue")]
    conf = {"generation": single, "generations": mapped, "destination": str(tmp_path)}

    state, run_id, tis = run_dag(monkeypatch, TESTS_DAGS / "upload_assets.py", "luma_upload_assets", conf)

    assert state == "success", {key: ti.state for key, ti in tis.items()}
    assert set(tis) == {("generations", -1), ("upload", -1), ("upload_each", 0), ("upload_each", 1)}
    single_image = tmp_path / f"{single['generation_id']}-0.png"
    mapped_images = [tmp_path / "mapped" / f"{result['generation_id']}-0.png" for result in mapped]
    assert all(path.exists() for path in [single_image, *mapped_images])

    record = json.loads(Path(f"{mapped_images[1]}.json").read_text())
    assert record["airflow"] == {
        "dag_id": "luma_upload_assets",
        "task_id": "upload_each",
        "run_id": run_id,
        "map_index": 1,
        "try_number": 1,
    }
    assert record["request"]["prompt"] == "a blue kite"

    events = _asset_events("luma_upload_assets", run_id)
    declared = [extra for task_id, uri, _, extra in events if uri == "luma_test_images"]
    assert len(declared) == 1
    assert declared[0]["luma_generation_id"] == single["generation_id"]
    assert declared[0]["luma_estimated_cost_usd"] == single["estimated_cost_usd"]
    assert declared[0]["outputs"][0]["uri"] == f"file://{single_image}"
    by_uri = {uri: (task, index, extra) for task, uri, index, extra in events if uri.startswith("file")}
    assert set(by_uri) == {f"file://{path}" for path in [single_image, *mapped_images]}
    task_id, map_index, extra = by_uri[f"file://{mapped_images[0]}"]
    assert (task_id, map_index, extra["luma_generation_id"]) == ("upload_each", 0, mapped[0]["generation_id"])
    assert extra["sha256"] == json.loads(Path(f"{mapped_images[0]}.json").read_text())["sha256"]

    # A second run of the same generations (what a clear or a retry does) downloads nothing.
    downloads = luma_emulator.stats.requests["GET output"]
    state, _, tis = run_dag(monkeypatch, TESTS_DAGS / "upload_assets.py", "luma_upload_assets", conf)
    assert state == "success"
    assert luma_emulator.stats.requests["GET output"] == downloads


def test_openlineage_events_of_a_run(luma_connection, openlineage_events, monkeypatch, tmp_path):
    prompt = "a lantern on a pier at dusk"
    single = completed_generation(luma_connection, prompt=prompt)
    mapped = completed_generation(luma_connection, prompt="a green kite")
    destination = tmp_path / "images"
    conf = {"generation": single, "generations": [mapped], "destination": str(destination)}

    state, _, tis = run_dag(monkeypatch, TESTS_DAGS / "upload_assets.py", "luma_upload_assets", conf)

    assert state == "success", {key: ti.state for key, ti in tis.items()}
    [event] = complete_events(openlineage_events, "luma_upload_assets.upload", count=1)
    assert event["job"]["namespace"] == "luma-tests"
    assert [(d["namespace"], d["name"]) for d in event["inputs"]] == [
        ("luma", f"generations/{single['generation_id']}")
    ]
    image = destination / f"{single['generation_id']}-0.png"
    assert image.exists()
    assert [(d["namespace"], d["name"]) for d in event["outputs"]] == [("file", str(image))]
    facet = event["run"]["facets"]["luma_generation"]
    assert facet["generation_id"] == single["generation_id"]
    assert facet["model"] == single["model"]
    assert facet["type"] == "image"
    assert facet["prompt_sha256"] == hashlib.sha256(prompt.encode()).hexdigest()
    assert facet["estimated_cost_usd"] == single["estimated_cost_usd"]
    # The prompt is only in the run's conf, where this test put it (Airflow's own facet copies the
    # conf); nothing the upload contributes carries it.
    del event["run"]["facets"]["airflow"]["dagRun"]["conf"]
    assert prompt not in json.dumps(event)

    # A mapped upload reports its own generation and object, not its siblings'.
    [mapped_event] = complete_events(openlineage_events, "luma_upload_assets.upload_each", count=1)
    assert mapped_event["run"]["facets"]["luma_generation"]["generation_id"] == mapped["generation_id"]
    mapped_image = destination / "mapped" / f"{mapped['generation_id']}-0.png"
    assert [(d["namespace"], d["name"]) for d in mapped_event["outputs"]] == [("file", str(mapped_image))]
