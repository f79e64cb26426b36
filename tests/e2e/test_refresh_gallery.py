"""
The campaign refresh and the gallery its Asset starts, on the real services (issue #11): the waits of
every mapped generate task end in the triggerer, every image is stored with a checksum its record
and the manifest agree on, the batch is ONE Asset event, and that event starts the gallery DAG,
whose page names every prompt. The pool has fewer slots than the batch has images, with deferred
waits counted, so the run also shows the pool holding the waits to the account's limit.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_luma.testing.airflow_services import AirflowServices, wait_for
from tests.e2e.deployment import luma_deployment
from tests.support import assert_no_leaks, text_files

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(480)]

EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"
REFRESH, GALLERY = "luma_marketing_refresh", "luma_campaign_gallery"
IMAGES, POOL_SLOTS = 4, 2


@dataclass
class Runs:
    services: AirflowServices
    output: Path
    api_key: str
    refresh_run: str = ""
    gallery_run: dict[str, Any] = field(default_factory=dict)
    generate: list[dict[str, Any]] = field(default_factory=list)
    states: dict[str, set[str]] = field(default_factory=dict)
    most_active: int = 0
    created: int = 0
    posts: int = 0


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    from airflow_provider_luma.testing import LumaEmulator

    root = tmp_path_factory.mktemp("refresh-gallery")
    emulator = LumaEmulator(queued_seconds=0.3, processing_seconds=1.5, long_edge=64)
    with luma_deployment(
        root,
        emulator,
        dags_folder=EXAMPLE_DAGS,
        AIRFLOW__LUMA__INITIAL_WAIT="0.5",
        AIRFLOW__LUMA__POLL_INTERVAL="0.5",
        AIRFLOW__CORE__PARALLELISM="4",
    ) as services:
        result = Runs(services=services, output=root / "output", api_key=emulator.api_key)
        services.wait_for_dag(REFRESH)
        services.wait_for_dag(GALLERY)
        services.create_pool("luma_api", POOL_SLOTS, "Luma concurrent jobs", include_deferred=True)
        services.unpause(GALLERY)
        result.refresh_run = run_id = services.trigger_next_scheduled(REFRESH, {"max_images": IMAGES})

        def finished() -> bool | None:
            services.raise_if_exited()
            # Sampled while the run goes: how many generate instances hold a pool slot at once.
            tis = [ti for ti in services.all_task_instances(REFRESH, run_id) if ti["task_id"] == "generate"]
            active = sum(ti["state"] in ("queued", "running", "deferred") for ti in tis)
            result.most_active = max(result.most_active, active)
            state = services.api_json("GET", f"/dags/{REFRESH}/dagRuns/{run_id}")["state"]
            return True if state in ("success", "failed") else None

        wait_for("the refresh to finish", finished, timeout=300, interval=0.5)
        result.generate = [
            ti for ti in services.all_task_instances(REFRESH, run_id) if ti["task_id"] == "generate"
        ]
        for ti in services.all_task_instances(REFRESH, run_id):
            result.states.setdefault(ti["task_id"], set()).add(ti["state"])

        def gallery_run() -> dict[str, Any] | None:
            found = services.api_json("GET", f"/dags/{GALLERY}/dagRuns")["dag_runs"]
            done = [run for run in found if run["state"] in ("success", "failed")]
            return dict(done[0]) if done else None

        result.gallery_run = wait_for(
            "the gallery run its Asset starts", gallery_run, timeout=180, interval=1
        )
        result.created = emulator.stats.generations_created
        result.posts = emulator.stats.requests["POST /v1/generations"]
        yield result


def test_both_runs_succeed(runs: Runs) -> None:
    assert set().union(*runs.states.values()) == {"success"}, runs.states
    assert runs.gallery_run["state"] == "success"
    assert runs.gallery_run["run_type"] == "asset_triggered"


def test_every_wait_ended_in_the_triggerer(runs: Runs) -> None:
    assert len(runs.generate) == IMAGES
    for ti in runs.generate:
        logs = list(runs.services.task_log_files(REFRESH, runs.refresh_run, "generate"))
        trigger_logs = [p for p in logs if ".trigger." in p.name and f"map_index={ti['map_index']}" in str(p)]
        assert trigger_logs, f"generate[{ti['map_index']}] has no triggerer log"
        fired = [
            json.loads(line)
            for path in trigger_logs
            for line in path.read_text().splitlines()
            if line.startswith("{") and json.loads(line).get("event") == "Trigger fired event"
        ]
        assert len(fired) == 1 and "'status': 'success'" in fired[0]["result"]


def test_the_pool_held_the_waits_to_its_slots(runs: Runs) -> None:
    # Four images, two slots: never more than two generate instances queued, running or deferred.
    assert 1 <= runs.most_active <= POOL_SLOTS


def test_each_generation_was_paid_once(runs: Runs) -> None:
    # The refresh took the place of the scheduled run unpausing would start: one batch, paid once.
    assert runs.created == runs.posts == IMAGES


def _manifest(runs: Runs) -> dict[str, Any]:
    summary = runs.services.xcom(REFRESH, runs.refresh_run, "publish_manifest")
    return dict(json.loads(Path(summary["manifest_uri"].removeprefix("file://")).read_text()))


def test_images_match_their_records_and_the_manifest(runs: Runs) -> None:
    images = _manifest(runs)["images"]
    assert len(images) == IMAGES
    for entry in images:
        data = Path(entry["uri"].removeprefix("file://")).read_bytes()
        record = json.loads(Path(entry["metadata_uri"].removeprefix("file://")).read_text())
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] == record["sha256"]
        assert len(data) == entry["size"] == record["size"]
        assert record["airflow"]["dag_id"] == REFRESH and record["airflow"]["run_id"] == runs.refresh_run


def test_one_asset_event_for_the_batch(runs: Runs) -> None:
    services = runs.services
    [asset] = [a for a in services.api_json("GET", "/assets")["assets"] if a["name"] == REFRESH]
    events = services.api_json("GET", "/assets/events", params={"asset_id": asset["id"]})["asset_events"]
    assert len(events) == 1
    summary = services.xcom(REFRESH, runs.refresh_run, "publish_manifest")
    assert events[0]["source_run_id"] == runs.refresh_run
    assert events[0]["extra"]["manifest_uri"] == summary["manifest_uri"]
    assert events[0]["extra"]["images"] == IMAGES


def test_the_gallery_page_names_every_prompt_and_shows_every_image(runs: Runs) -> None:
    page_uri = runs.services.xcom(GALLERY, runs.gallery_run["dag_run_id"], "build_gallery")["gallery_uri"]
    page_path = Path(page_uri.removeprefix("file://"))
    page = page_path.read_text()
    for entry in _manifest(runs)["images"]:
        record = json.loads(Path(entry["metadata_uri"].removeprefix("file://")).read_text())
        assert html.escape(record["request"]["prompt"]) in page
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) == IMAGES
    assert all("/" not in src and (page_path.parent / src).is_file() for src in sources)


def test_no_key_in_any_trace(runs: Runs) -> None:
    texts = {
        **text_files(runs.services.task_logs),
        **text_files(runs.output, suffixes=[".json", ".html"]),
        "service logs": runs.services.log_tails(lines=100_000),
    }
    assert_no_leaks(texts, secrets=[runs.api_key])
