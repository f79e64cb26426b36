"""
Real Airflow runs (``dag.test()``) of uploads: Asset events in the metadata DB, mapping over generate
results, the metadata record's Airflow ids, a second run that skips, and the example DAG end to end.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from tests.support import completed_generation, run_dag, xcom

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


def _task_state_store_exists() -> bool:
    from airflow.sdk.execution_time import context

    return hasattr(context, "TaskStateStoreAccessor")


_HAS_TASK_STATE_STORE = _task_state_store_exists()


def test_example_marketing_refresh_dag(luma_emulator, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW__LUMA__OUTPUT_PATH", f"file://{tmp_path}")

    state, run_id, tis = run_dag(
        monkeypatch,
        EXAMPLE_DAGS / "example_luma_marketing_refresh.py",
        "example_luma_marketing_refresh",
    )

    assert state == "success", {key: ti.state for key, ti in tis.items()}
    records = sorted(tmp_path.rglob("*.json"))
    assert len(records) == luma_emulator.stats.generations_created == 3
    prompts = sorted(json.loads(path.read_text())["request"]["prompt"] for path in records)
    assert all("spring sale" in prompt for prompt in prompts)
    for path in records:
        record = json.loads(path.read_text())
        image = Path(str(path)[: -len(".json")])
        assert image.stat().st_size == record["size"]
        if _HAS_TASK_STATE_STORE:  # below 3.3, dag.test() drops the deferral's kwargs that carry it
            # The submission's request id, naming the task that paid for it (not the last poll's).
            map_index = record["airflow"]["map_index"]
            assert record["request_id"].startswith("airflow-example_luma_marketing_refresh-manual__")
            assert record["request_id"].endswith(f"-generate-{map_index}-1")
    aliased = [uri for _, uri, _, _ in _asset_events("example_luma_marketing_refresh", run_id)]
    assert sorted(aliased) == sorted(f"file://{str(path)[: -len('.json')]}" for path in records)
    spend = xcom(tis[("spend", -1)])
    assert spend["estimated_cost_usd"] == pytest.approx(3 * 0.0404) and spend["submissions"] == 3


def _complete_events(events_file: Path, job_name: str, count: int) -> list[dict]:
    """The COMPLETE events of a job, once ``count`` of them are in the file (bounded wait)."""
    deadline = time.monotonic() + 15
    while True:
        lines = events_file.read_text().splitlines(keepends=True) if events_file.exists() else []
        events = [json.loads(line) for line in lines if line.endswith("\n")]
        complete = [e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"] == job_name]
        if len(complete) >= count or time.monotonic() > deadline:
            return complete
        time.sleep(0.05)


def test_openlineage_events_of_a_run(luma_connection, openlineage_events, monkeypatch, tmp_path):
    prompt = "a lantern on a pier at dusk"
    single = completed_generation(luma_connection, prompt=prompt)
    mapped = completed_generation(luma_connection, prompt="a green kite")
    destination = tmp_path / "images"
    conf = {"generation": single, "generations": [mapped], "destination": str(destination)}

    state, _, tis = run_dag(monkeypatch, TESTS_DAGS / "upload_assets.py", "luma_upload_assets", conf)

    assert state == "success", {key: ti.state for key, ti in tis.items()}
    [event] = _complete_events(openlineage_events, "luma_upload_assets.upload", count=1)
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
    [mapped_event] = _complete_events(openlineage_events, "luma_upload_assets.upload_each", count=1)
    assert mapped_event["run"]["facets"]["luma_generation"]["generation_id"] == mapped["generation_id"]
    mapped_image = destination / "mapped" / f"{mapped['generation_id']}-0.png"
    assert [(d["namespace"], d["name"]) for d in mapped_event["outputs"]] == [("file", str(mapped_image))]
