"""
The example DAGs in ``example_dags/``: every file parses on its own, in a fresh interpreter, quickly and
without import errors; the three small examples (quickstart, image edit, submit then sense) run in
``dag.test()`` against the emulator and leave verified images and metadata records in the configured
storage.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support import complete_events, emulator_bytes, run_dag, xcom

if TYPE_CHECKING:
    from airflow_provider_luma.testing import LumaEmulator

EXAMPLE_DAGS = Path(__file__).resolve().parents[1] / "example_dags"
EXAMPLE_FILES = sorted(EXAMPLE_DAGS.glob("*.py"))
ASSETS = EXAMPLE_DAGS / "assets"
#: Seconds one file may take to parse once Airflow itself is imported. A generous bound: the files
#: parse in well under 0.2 s here; a file that reads storage or calls the API at parse time would not.
PARSE_BUDGET_SECONDS = 5.0

# Run in a fresh interpreter per file: Airflow is imported first (the dag processor has it loaded
# already), then only the file's own parse is timed, through DagBag, which collects import errors
# the way Airflow does.
_PARSE_SCRIPT = """
import json, sys, time
import airflow.sdk
try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:  # Airflow < 3.2
    from airflow.models.dagbag import DagBag
started = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "dag_ids": sorted(bag.dag_ids),
                  "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()}}))
"""


def test_the_example_folder_is_found() -> None:
    names = {path.name for path in EXAMPLE_FILES}
    assert {"luma_quickstart.py", "luma_image_edit.py", "luma_submit_then_sense.py"} <= names
    assert {"luma_marketing_refresh.py", "luma_campaign_gallery.py", "luma_lineage.py"} <= names


@pytest.mark.parametrize("dag_file", EXAMPLE_FILES, ids=[path.name for path in EXAMPLE_FILES])
def test_example_file_parses_alone_quickly(dag_file: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("LUMA_EXAMPLE_")}
    completed = subprocess.run(
        [sys.executable, "-c", _PARSE_SCRIPT, str(dag_file)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    parsed = json.loads(completed.stdout.strip().splitlines()[-1])
    print(f"{dag_file.name}: parsed in {parsed['seconds']:.3f} s, dags {parsed['dag_ids']}")
    assert parsed["import_errors"] == {}
    assert parsed["seconds"] < PARSE_BUDGET_SECONDS
    assert parsed["dag_ids"]
    assert all(dag_id.startswith(("luma_", "example_luma_")) for dag_id in parsed["dag_ids"])


# --- runs against the emulator ------------------------------------------------------------------------


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _stored(folder: Path) -> dict[str, dict[str, Any]]:
    """The metadata records under ``folder`` by generation id, each checked against its image."""
    records = {}
    for path in sorted(folder.rglob("*.png.json")):
        record = json.loads(path.read_text())
        image = path.with_name(path.name[: -len(".json")])
        data = image.read_bytes()
        assert record["uri"] == image.as_uri()
        assert record["sha256"] == _sha256(data)
        assert record["size"] == len(data)
        assert record["content_type"] == "image/png" and data.startswith(b"\x89PNG")
        records[record["generation_id"]] = record
    return records


@pytest.fixture
def sent_bodies(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The body of every ``POST /generations`` the hook sends in this test, as the API receives it."""
    from airflow_provider_luma.hooks.luma import LumaHook

    bodies: list[dict[str, Any]] = []
    original = LumaHook.create_generation

    def spy(self: Any, request: Any = None, /, **kwargs: Any) -> Any:
        bodies.append(request.to_json())  # the operator always passes a GenerationRequest
        return original(self, request, **kwargs)

    monkeypatch.setattr(LumaHook, "create_generation", spy)
    return bodies


def _succeeded(result: Any) -> None:
    state, _, tis = result
    assert state == "success", {key: ti.state for key, ti in tis.items()}
    assert all(ti.state == "success" for ti in tis.values())


@pytest.mark.usefixtures("airflow_db")
def test_quickstart_generates_and_stores_one_image(
    luma_emulator: LumaEmulator, luma_connection: str, output_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_dag(monkeypatch, EXAMPLE_DAGS / "luma_quickstart.py", "luma_quickstart")

    _succeeded(result)
    tis = result.tis
    assert set(tis) == {("generate", -1), ("store", -1)}
    assert luma_emulator.stats.generations_created == 1
    generated = xcom(tis[("generate", -1)])
    assert generated["state"] == "completed" and generated["type"] == "image"
    records = _stored(output_path)
    assert set(records) == {generated["generation_id"]}
    record = records[generated["generation_id"]]
    assert record["request"]["prompt"].startswith("a ceramic coffee mug")
    assert record["request"]["aspect_ratio"] == "16:9"
    assert record["airflow"]["dag_id"] == "luma_quickstart" and record["airflow"]["task_id"] == "store"
    # The stored bytes are the emulator's output, fetched again here on a fresh URL.
    assert record["sha256"] == _sha256(emulator_bytes(luma_connection, generated["generation_id"]))
    [entry] = xcom(tis[("store", -1)])["outputs"]
    assert (entry["uri"], entry["sha256"]) == (record["uri"], record["sha256"])


@pytest.mark.usefixtures("airflow_db")
def test_image_edit_chains_an_edit_and_edits_a_stored_photo_with_uploaded_files(
    luma_emulator: LumaEmulator,
    luma_connection: str,
    output_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sent_bodies: list[dict[str, Any]],
) -> None:
    result = run_dag(monkeypatch, EXAMPLE_DAGS / "luma_image_edit.py", "luma_image_edit")

    _succeeded(result)
    tis = result.tis
    assert set(tis) == {
        (task_id, -1)
        for task_id in ("generate", "recolour", "stage", "store_generate", "store_recolour", "store_stage")
    }
    assert luma_emulator.stats.generations_created == 3
    generated, recoloured, staged = (xcom(tis[(task, -1)]) for task in ("generate", "recolour", "stage"))
    assert recoloured["type"] == staged["type"] == "image_edit"
    # The chained edit names its upstream by id: no image went through Airflow.
    assert recoloured["request"]["source"] == {"generation_id": generated["generation_id"]}

    # The product photo and the logo were each uploaded once, as files, and referenced by id.
    assert luma_emulator.stats.requests["POST /v1/files"] == 2
    assert luma_emulator.stats.file_uploads == 2
    product_sha = _sha256((ASSETS / "product.png").read_bytes())
    logo_sha = _sha256((ASSETS / "brand_logo.png").read_bytes())
    source = staged["request"]["source"]
    [logo] = staged["request"]["image_ref"]
    assert (source["uri"], source["sha256"]) == ((ASSETS / "product.png").as_uri(), product_sha)
    assert (logo["uri"], logo["sha256"]) == ((ASSETS / "brand_logo.png").as_uri(), logo_sha)
    file_ids = set(luma_emulator.file_ids())
    assert len(file_ids) == 2
    assert {luma_emulator.file_state(file_id) for file_id in file_ids} == {"ready"}
    # On the wire, the storage edit named both images by file id (no base64 was sent).
    [body] = [body for body in sent_bodies if body.get("prompt", "").startswith("place this product")]
    assert set(body["source"]) == {"file_id"} and [set(ref) for ref in body["image_ref"]] == [{"file_id"}]
    assert {body["source"]["file_id"], body["image_ref"][0]["file_id"]} == file_ids
    # The result names the same ids, unless dag.test() dropped the deferral's kwargs that carry them
    # (the task then describes its request again from storage, by URI and sha256 only).
    if source["file_id"] is not None:
        assert (source["file_id"], logo["file_id"]) == (
            body["source"]["file_id"],
            body["image_ref"][0]["file_id"],
        )

    records = _stored(output_path)
    ids = {result["generation_id"] for result in (generated, recoloured, staged)}
    assert set(records) == ids and len(ids) == 3
    for result in (generated, recoloured, staged):
        record = records[result["generation_id"]]
        assert record["sha256"] == _sha256(emulator_bytes(luma_connection, result["generation_id"]))
        assert record["request"] == result["request"]
    assert records[staged["generation_id"]]["request"]["source"]["sha256"] == product_sha


@pytest.mark.usefixtures("airflow_db")
def test_submit_then_sense_waits_for_the_submitted_generation_and_stores_it(
    luma_emulator: LumaEmulator, luma_connection: str, output_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_dag(monkeypatch, EXAMPLE_DAGS / "luma_submit_then_sense.py", "luma_submit_then_sense")

    _succeeded(result)
    tis = result.tis
    assert set(tis) == {("submit", -1), ("wait", -1), ("store", -1)}
    assert luma_emulator.stats.generations_created == 1
    assert luma_emulator.stats.requests["POST /v1/generations"] == 1
    submitted = xcom(tis[("submit", -1)])
    # The submit returned before the generation finished; the sensor saw it complete.
    assert submitted["state"] in {"queued", "processing"}
    waited = xcom(tis[("wait", -1)])
    assert waited["generation_id"] == submitted["generation_id"]
    assert waited["state"] == "completed"
    records = _stored(output_path)
    assert set(records) == {submitted["generation_id"]}
    record = records[submitted["generation_id"]]
    assert record["request"]["prompt"].startswith("a canvas tote bag")
    assert record["sha256"] == _sha256(emulator_bytes(luma_connection, submitted["generation_id"]))


def _task_state_store_exists() -> bool:
    from airflow.sdk.execution_time import context

    return hasattr(context, "TaskStateStoreAccessor")


_HAS_TASK_STATE_STORE = _task_state_store_exists()


def _campaign_rows() -> list[tuple[str, str]]:
    """(prompt, aspect_ratio) of every product x channel of the campaign file, in order."""
    spec = json.loads((EXAMPLE_DAGS / "campaigns" / "spring_launch.json").read_text())
    return [
        (f"{product['subject']}, {channel['framing']}, {spec['style']}", channel["aspect_ratio"])
        for product in spec["products"]
        for channel in spec["channels"]
    ]


@pytest.mark.usefixtures("airflow_db")
def test_marketing_refresh_maps_the_campaign_and_publishes_one_manifest(
    luma_emulator: LumaEmulator, luma_connection: str, output_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_dag(
        monkeypatch,
        EXAMPLE_DAGS / "luma_marketing_refresh.py",
        "luma_marketing_refresh",
        conf={"max_images": 4},
    )

    _succeeded(result)
    tis = result.tis
    mapped = {task_id: sorted(i for t, i in tis if t == task_id) for task_id in ("generate", "upload")}
    assert mapped == {"generate": [0, 1, 2, 3], "upload": [0, 1, 2, 3]}
    assert luma_emulator.stats.generations_created == 4
    assert luma_emulator.stats.requests["POST /v1/generations"] == 4
    # The first four rows of products x channels, each with its channel's ratio.
    generated = [xcom(tis[("generate", index)]) for index in range(4)]
    assert [(g["request"]["prompt"], g["request"]["aspect_ratio"]) for g in generated] == _campaign_rows()[:4]

    records = _stored(output_path)
    assert set(records) == {g["generation_id"] for g in generated}
    if _HAS_TASK_STATE_STORE:  # below 3.3, dag.test() drops the deferral's kwargs that carry it
        for record in records.values():
            # The submission's request id names the mapped task that paid for it.
            map_index = record["airflow"]["map_index"]
            assert record["request_id"].startswith("airflow-luma_marketing_refresh-manual__")
            assert record["request_id"].endswith(f"-generate-{map_index}-1")
    summary = xcom(tis[("publish_manifest", -1)])
    manifest_path = Path(summary["manifest_uri"].removeprefix("file://"))
    # Everything of the run in one folder of the configured storage: images, records, manifest.
    assert manifest_path.name == "manifest.json"
    assert manifest_path.parent.parent == output_path / "spring-launch"
    assert {Path(record["uri"].removeprefix("file://")).parent for record in records.values()} == {
        manifest_path.parent
    }
    manifest = json.loads(manifest_path.read_text())
    assert [(image["generation_id"], image["sha256"]) for image in manifest["images"]] == [
        (g["generation_id"], records[g["generation_id"]]["sha256"]) for g in generated
    ]
    assert summary == {
        "manifest_uri": manifest_path.as_uri(),
        "images": 4,
        "generations": 4,
        "estimated_cost_usd": pytest.approx(4 * 0.0404),
    }
    assert manifest["run"] == {
        "dag_id": "luma_marketing_refresh",
        "run_id": result.run_id,
        "task_id": "publish_manifest",
    }
    assert xcom(tis[("spend", -1)])["estimated_cost_usd"] == pytest.approx(4 * 0.0404)

    # The gallery of that batch (as its Asset event would start it, here through the param).
    gallery = run_dag(
        monkeypatch,
        EXAMPLE_DAGS / "luma_campaign_gallery.py",
        "luma_campaign_gallery",
        conf={"manifest_uri": summary["manifest_uri"]},
    )
    _succeeded(gallery)
    page = xcom(gallery.tis[("build_gallery", -1)])
    assert page == {
        "gallery_uri": (manifest_path.parent / "index.html").as_uri(),
        "manifest_uri": summary["manifest_uri"],
        "images": 4,
    }
    html = (manifest_path.parent / "index.html").read_text()
    for g in generated:
        assert escape(g["request"]["prompt"]) in html
        assert f'src="{g["generation_id"]}-0.png"' in html


@pytest.mark.usefixtures("airflow_db")
def test_lineage_example_records_each_image_back_to_the_hero(
    luma_emulator: LumaEmulator,
    luma_connection: str,
    output_path: Path,
    openlineage_events: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    result = run_dag(monkeypatch, EXAMPLE_DAGS / "luma_lineage.py", "luma_lineage")

    _succeeded(result)
    tis = result.tis
    hero = xcom(tis[("hero", -1)])["generation_id"]
    adapted = [xcom(tis[("adapt", index)])["generation_id"] for index in (0, 1)]
    records = _stored(output_path)
    assert set(records) == {hero, *adapted}

    def datasets(event: dict[str, Any], side: str) -> set[tuple[str, str]]:
        return {(dataset["namespace"], dataset["name"]) for dataset in event[side]}

    def stored(generation_id: str) -> set[tuple[str, str]]:
        return {("file", records[generation_id]["uri"].removeprefix("file://"))}

    [hero_event] = complete_events(openlineage_events, "luma_lineage.store_hero", count=1)
    assert datasets(hero_event, "inputs") == {("luma", f"generations/{hero}")}
    assert datasets(hero_event, "outputs") == stored(hero)
    adapted_events = complete_events(openlineage_events, "luma_lineage.store_adapted", count=2)
    assert len(adapted_events) == 2
    by_generation = {
        event["run"]["facets"]["luma_generation"]["generation_id"]: event for event in adapted_events
    }
    assert set(by_generation) == set(adapted)
    for generation_id, event in by_generation.items():
        # Each channel image comes from its edit, and the edit from the hero.
        assert datasets(event, "inputs") == {
            ("luma", f"generations/{generation_id}"),
            ("luma", f"generations/{hero}"),
        }
        assert datasets(event, "outputs") == stored(generation_id)
        assert event["run"]["facets"]["luma_generation"]["type"] == "image_edit"
