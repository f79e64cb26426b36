"""
What the deployment harness reports about a run without any service running: the progress counts a
person watches, the end of a failed task instance's log (the right file, read as text), and which
waits the triggerer ended.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from airflow_provider_luma.testing.airflow_services import AirflowServices, RunProgress

if TYPE_CHECKING:
    from pathlib import Path


def test_progress_counts_each_state_a_watcher_cares_about() -> None:
    states = ["success", "skipped", "deferred", "running", "failed", "upstream_failed", "scheduled", None]
    progress = RunProgress.of(states)

    assert progress == RunProgress(total=8, done=2, deferred=1, running=1, failed=2)
    assert str(progress) == "2/8 done, 1 deferred, 1 running, 2 failed"


def _event(level: str, event: str, **extra: object) -> str:
    return json.dumps({"timestamp": "2026-12-04T05:36:33.339400Z", "level": level, "event": event, **extra})


def _ti(map_index: int, try_number: int) -> dict[str, object]:
    return {
        "dag_id": "refresh",
        "dag_run_id": "manual__2026-12-04T05:36:26+00:00",
        "task_id": "generate",
        "map_index": map_index,
        "try_number": try_number,
    }


def _log(
    home: Path,
    map_index: int,
    try_number: int,
    lines: list[str],
    *,
    task_id: str = "generate",
    suffix: str = "",
) -> Path:
    folder = home / f"logs/dag_id=refresh/run_id=manual__2026-12-04T05:36:26+00:00/task_id={task_id}"
    if map_index >= 0:
        folder /= f"map_index={map_index}"
    path = folder / f"attempt={try_number}.log{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_failed_task_instances_log_tail_is_its_own_last_try_read_as_text(tmp_path: Path) -> None:
    services = AirflowServices(home=tmp_path, dags_folder=tmp_path)
    failure = _event(
        "error",
        "Task failed with exception",
        error_detail=[
            {"exc_type": "AirflowFailException", "exc_value": "Generation g1 failed", "frames": [{}]},
            {"exc_type": "LumaGenerationFailedError", "exc_value": "content_moderated", "frames": []},
        ],
    )
    # Another map index and an earlier try of the same one: neither is the failure asked about.
    _log(tmp_path, 0, 2, [_event("error", "map index 0's own failure")])
    _log(tmp_path, 1, 1, [_event("error", "the first try's failure")])
    path = _log(tmp_path, 1, 2, [_event("info", "Submitted generation g1"), "not JSON", failure])

    tail = services.task_log_tail(_ti(map_index=1, try_number=2), lines=2)

    assert tail == (
        path,
        "not JSON\n"
        "05:36:33 ERROR Task failed with exception\n"
        "    AirflowFailException: Generation g1 failed\n"
        "    LumaGenerationFailedError: content_moderated",
    )


def test_a_task_instance_that_wrote_no_log_has_no_tail(tmp_path: Path) -> None:
    services = AirflowServices(home=tmp_path, dags_folder=tmp_path)
    _log(tmp_path, 1, 1, [_event("info", "the first try")])

    assert services.task_log_tail(_ti(map_index=1, try_number=2)) is None


def test_waits_ended_in_the_triggerer_are_the_task_instances_whose_trigger_fired(tmp_path: Path) -> None:
    services = AirflowServices(home=tmp_path, dags_folder=tmp_path)
    fired = [_event("info", "trigger g1 polling"), _event("info", "Trigger fired event", result="{}")]
    _log(tmp_path, 0, 1, [_event("info", "Pausing task as DEFERRED")])
    _log(tmp_path, 0, 1, fired, suffix=".trigger.7.log")
    _log(tmp_path, 2, 1, fired, suffix=".trigger.8.log")
    _log(tmp_path, -1, 1, fired, task_id="wait", suffix=".trigger.9.log")
    # Still waiting when the triggerer stopped: deferred, but not ended there.
    _log(tmp_path, 1, 1, [_event("info", "trigger g2 polling")], suffix=".trigger.10.log")

    assert services.waits_ended_in_triggerer("refresh", "manual__2026-12-04T05:36:26+00:00") == {
        ("generate", 0),
        ("generate", 2),
        ("wait", -1),
    }
    assert services.waits_ended_in_triggerer("refresh", "another_run") == set()
