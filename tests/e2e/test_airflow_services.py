"""
End to end with the real Airflow services: api-server, scheduler (LocalExecutor), triggerer and
dag-processor, on SQLite, against the Luma emulator over HTTP on 127.0.0.1.

One DAG run (``tests/e2e/dags/e2e_luma_generate.py``: generate, deferred, then upload to a local
folder) is driven by the module fixture; each test checks one thing about it. The emulator keeps the
generation ``processing`` until the test releases it, so the deferral is observed, not hoped for:
the test waits for the task to be ``deferred``, then for the trigger's GETs to reach the emulator
while the task is still deferred, and only then completes the generation.

A second run (``e2e_luma_killed_worker.py``) then kills first tries with SIGKILL, once between the
POST's answer and the record of its generation id, once after it: the scheduler retries each, and
the tests check that neither crash paid for a second generation.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import pytest

from airflow_provider_luma.testing.airflow_services import AirflowServices, wait_for
from tests.e2e.deployment import luma_deployment
from tests.support import assert_no_leaks, metadata_db_texts, text_files

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

DAGS_FOLDER = Path(__file__).parent / "dags"
DAG_ID = "e2e_luma_generate"
KILLED_DAG_ID = "e2e_luma_killed_worker"
GET_GENERATION = "GET /v1/generations/{id}"
POST_GENERATION = "POST /v1/generations"


@dataclass
class E2ERun:
    """What the fixture saw while driving the run, for the tests to check."""

    services: AirflowServices
    output_dir: Path
    run_id: str = ""
    run: dict[str, Any] = field(default_factory=dict)
    task_states: dict[str, str] = field(default_factory=dict)
    generation_id: str = ""
    #: emulator counters when the task was first seen deferred, and after the trigger's GETs.
    stats_at_deferral: dict[str, int] = field(default_factory=dict)
    stats_while_deferred: dict[str, int] = field(default_factory=dict)
    state_after_gets: str = ""
    stats_at_end: dict[str, int] = field(default_factory=dict)
    generations_created: int = 0
    listeners: list[tuple[str, str, int]] = field(default_factory=list)
    #: The crash run (``e2e_luma_killed_worker``): its id, task instances, and what it cost.
    killed_run_id: str = ""
    killed_tis: dict[str, dict[str, Any]] = field(default_factory=dict)
    killed_counts: dict[str, int] = field(default_factory=dict)
    api_key: str = ""


def _counts(emulator: Any) -> dict[str, int]:
    stats = emulator.stats
    return {"created": stats.generations_created, **stats.requests}


def _listeners(services: AirflowServices) -> list[tuple[str, str, int]]:
    """(service, address, port) of every listening socket of the services and their children."""
    found = []
    for service in services.services:
        parent = psutil.Process(service.process.pid)
        for process in [parent, *parent.children(recursive=True)]:
            try:
                connections = process.net_connections(kind="inet")
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            found += [
                (service.name, conn.laddr.ip, conn.laddr.port)
                for conn in connections
                if conn.status == psutil.CONN_LISTEN
            ]
    return found


def _task_state(services: AirflowServices, run_id: str, task_id: str) -> str | None:
    return services.task_instances(DAG_ID, run_id).get(task_id, {}).get("state")


@pytest.fixture(scope="module")
def e2e_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2ERun]:
    from airflow_provider_luma.testing import LumaEmulator

    root = tmp_path_factory.mktemp("e2e-services")
    # The generation stays "processing" until the test completes it (set_state below).
    emulator = LumaEmulator(queued_seconds=0.2, processing_seconds=3600, long_edge=64)
    with luma_deployment(root, emulator, dags_folder=DAGS_FOLDER) as services:
        result = E2ERun(services=services, output_dir=root / "output", api_key=emulator.api_key)
        services.wait_for_dag(DAG_ID)
        result.run_id = run_id = services.trigger(DAG_ID)

        def deferred() -> bool | None:
            state = _task_state(services, run_id, "generate")
            if state in ("failed", "upstream_failed", "success"):
                raise AssertionError(f"generate ended {state} before it was seen deferred")
            return True if state == "deferred" else None

        wait_for("the generate task to defer", deferred, timeout=120)
        result.stats_at_deferral = _counts(emulator)
        result.listeners = _listeners(services)
        (result.generation_id,) = emulator.generation_ids()
        polls_before = result.stats_at_deferral.get(GET_GENERATION, 0)
        wait_for(
            "the trigger to poll the emulator",
            lambda: True if emulator.stats.requests[GET_GENERATION] >= polls_before + 2 else None,
            timeout=60,
            interval=0.2,
        )
        result.stats_while_deferred = _counts(emulator)
        result.state_after_gets = _task_state(services, run_id, "generate") or ""
        emulator.set_state(result.generation_id, "completed")

        result.run = services.wait_for_run(DAG_ID, run_id, timeout=240)
        result.task_states = {
            task_id: ti["state"] for task_id, ti in services.task_instances(DAG_ID, run_id).items()
        }
        result.stats_at_end = _counts(emulator)
        result.generations_created = emulator.stats.generations_created

        # The crash run, after the first so that its counters stand alone: generations finish now.
        emulator.reset()
        emulator.configure(processing_seconds=0.5)
        services.wait_for_dag(KILLED_DAG_ID)
        result.killed_run_id = services.trigger(KILLED_DAG_ID)
        services.wait_for_run(KILLED_DAG_ID, result.killed_run_id, timeout=240)
        result.killed_tis = services.task_instances(KILLED_DAG_ID, result.killed_run_id)
        result.killed_counts = _counts(emulator)
        yield result


def test_run_succeeds(e2e_run: E2ERun) -> None:
    assert e2e_run.run["state"] == "success"
    assert e2e_run.task_states == {"generate": "success", "upload": "success"}


def test_submitted_once_by_the_worker_before_deferring(e2e_run: E2ERun) -> None:
    # By the time the task was deferred, its worker had made the one POST and no more.
    assert e2e_run.stats_at_deferral["created"] == 1
    assert e2e_run.stats_at_deferral[POST_GENERATION] == 1
    # Nothing submitted again afterwards: the triggerer and the upload only read.
    assert e2e_run.stats_at_end[POST_GENERATION] == 1
    assert e2e_run.generations_created == 1


def _log_events(path: Path) -> list[dict[str, Any]]:
    """The structured (JSON lines) events of a task log file."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def test_polled_by_the_triggerer_while_deferred(e2e_run: E2ERun) -> None:
    assert e2e_run.stats_while_deferred[GET_GENERATION] > e2e_run.stats_at_deferral.get(GET_GENERATION, 0)
    # The generation could not have ended yet, so those GETs came from the trigger of a deferred task.
    assert e2e_run.state_after_gets == "deferred"

    logs = list(e2e_run.services.task_log_files(DAG_ID, e2e_run.run_id, "generate"))
    worker = [event["event"] for path in logs if ".trigger." not in path.name for event in _log_events(path)]
    submitted = f"Submitted generation {e2e_run.generation_id}"
    submitted_at = next(i for i, event in enumerate(worker) if event.startswith(submitted))
    deferred_at = next(i for i, event in enumerate(worker) if event.startswith("Pausing task as DEFERRED"))
    assert submitted_at < deferred_at, worker
    # The triggerer writes the trigger's own log next to the task's: the wait ended there.
    trigger_events = [event for path in logs if ".trigger." in path.name for event in _log_events(path)]
    assert any(
        event.get("logger") == "airflow_provider_luma.triggers.luma.LumaGenerationTrigger"
        and e2e_run.generation_id in event["event"]
        for event in trigger_events
    ), trigger_events
    fired = [event for event in trigger_events if event["event"] == "Trigger fired event"]
    assert len(fired) == 1
    assert "'status': 'success'" in fired[0]["result"]


def test_generate_result_in_xcom(e2e_run: E2ERun) -> None:
    result = e2e_run.services.xcom(DAG_ID, e2e_run.run_id, "generate")
    assert result["generation_id"] == e2e_run.generation_id
    assert result["state"] == "completed"
    assert result["output_count"] == 1
    assert result["request"]["prompt"].startswith("A lighthouse")
    # Nothing secret or bulky: no presigned URL, no API key.
    assert "http" not in json.dumps(result)


def test_image_stored_at_the_destination(e2e_run: E2ERun) -> None:
    manifest = e2e_run.services.xcom(DAG_ID, e2e_run.run_id, "upload")
    assert manifest["generation_id"] == e2e_run.generation_id
    (output,) = manifest["outputs"]
    image = Path(output["uri"].removeprefix("file://"))
    assert image.parent == e2e_run.output_dir
    data = image.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) == output["size"]
    assert hashlib.sha256(data).hexdigest() == output["sha256"]
    record = json.loads(Path(str(image) + ".json").read_text())
    assert record["generation_id"] == e2e_run.generation_id
    assert record["airflow"]["dag_id"] == DAG_ID
    # No partial files left behind.
    assert sorted(path.name for path in e2e_run.output_dir.iterdir()) == [image.name, image.name + ".json"]


def _try_log(services: AirflowServices, run_id: str, task_id: str, try_number: int) -> str:
    """One try's task log, whole (an error's message is in the event's ``error_detail``)."""
    (path,) = [
        path
        for path in services.task_log_files(KILLED_DAG_ID, run_id, task_id)
        if path.name == f"attempt={try_number}.log"
    ]
    return path.read_text()


def test_a_worker_killed_between_the_201_and_the_record_is_never_paid_twice(e2e_run: E2ERun) -> None:
    ti = e2e_run.killed_tis["killed_after_201"]
    # Try 1 died by SIGKILL; try 2 found the write-ahead record pending and refused to POST.
    assert ti["try_number"] == 2 and ti["state"] == "failed"
    first = _try_log(e2e_run.services, e2e_run.killed_run_id, "killed_after_201", 1)
    assert "Submitted generation" in first and "Task failed" not in first  # killed, not failed
    second = _try_log(e2e_run.services, e2e_run.killed_run_id, "killed_after_201", 2)
    request_id = f"airflow-{KILLED_DAG_ID}-manual__"
    assert "answer was lost" in second and request_id in second and "-killed_after_201--1-1" in second
    assert "clear the task" in second and "AirflowFailException" in second


def test_a_worker_killed_after_the_record_is_reattached_by_its_retry(e2e_run: E2ERun) -> None:
    ti = e2e_run.killed_tis["killed_after_record"]
    assert ti["try_number"] == 2 and ti["state"] == "success"
    second = _try_log(e2e_run.services, e2e_run.killed_run_id, "killed_after_record", 2)
    assert "Reattached to generation" in second and "Submitted generation" not in second


def test_the_crash_run_paid_for_one_generation_per_task(e2e_run: E2ERun) -> None:
    assert e2e_run.killed_counts["created"] == 2
    assert e2e_run.killed_counts[POST_GENERATION] == 2


def test_services_listen_on_loopback_only(e2e_run: E2ERun) -> None:
    assert e2e_run.listeners, "expected at least the api-server to listen"
    assert {address for _, address, _ in e2e_run.listeners} == {"127.0.0.1"}
    assert ("api-server", "127.0.0.1", e2e_run.services.port) in e2e_run.listeners


def test_no_key_or_presigned_url_in_any_trace(e2e_run: E2ERun) -> None:
    """Task and trigger logs, every DB row of both runs, the metadata records and the service logs."""
    services = e2e_run.services
    texts = {
        **text_files(services.task_logs),
        **metadata_db_texts(
            [DAG_ID, KILLED_DAG_ID],
            [e2e_run.run_id, e2e_run.killed_run_id],
            f"sqlite:///{services.home / 'airflow.db'}",
        ),
        **text_files(e2e_run.output_dir, suffixes=[".json"]),
        "service logs": services.log_tails(lines=100_000),
    }
    assert any("Submitted generation" in text for text in texts.values())  # the scan saw the runs
    assert_no_leaks(texts, secrets=[e2e_run.api_key])
