"""
Helpers shared by the test modules (fixtures live in the conftest files): DAG runs, completed
generations on the emulator, an S3 server handle, a minimal task context.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

BUCKET = "luma-outputs"
AWS_CONN_ID = "aws_test"


@dataclass
class S3Server:
    endpoint_url: str
    client: Any

    def keys(self) -> list[str]:
        return [item["Key"] for item in self.client.list_objects_v2(Bucket=BUCKET).get("Contents", [])]

    def pending_multipart_uploads(self) -> list[Any]:
        return self.client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])

    def empty(self) -> None:
        for key in self.keys():
            self.client.delete_object(Bucket=BUCKET, Key=key)


class DagRunResult(NamedTuple):
    state: str
    run_id: str
    #: Task instances by (task_id, map_index).
    tis: dict[tuple[str, int], Any]


def run_dag(
    monkeypatch: pytest.MonkeyPatch,
    dag_file: Path,
    dag_id: str,
    conf: dict[str, Any] | None = None,
) -> DagRunResult:
    """Run one DAG of a file with ``dag.test()`` and read back its task instances."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.2
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    # dag.test() re-parses its whole bundle, and needs the file inside it: one small folder.
    folder = str(dag_file.parent)
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", folder)
    monkeypatch.setattr("airflow.settings.DAGS_FOLDER", folder)
    # The emulator finishes in a fraction of a second: Luma's production timing (a first check
    # after 20 s) would only slow the suite.
    monkeypatch.setenv("AIRFLOW__LUMA__INITIAL_WAIT", "0.05")
    monkeypatch.setenv("AIRFLOW__LUMA__POLL_INTERVAL", "0.05")
    bag = DagBag(dag_folder=str(dag_file))
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags[dag_id]
    run = dag.test(run_conf=conf)
    with create_session() as session:
        tis = session.get(DagRun, run.id).get_task_instances(session=session)
        return DagRunResult(run.state, run.run_id, {(ti.task_id, ti.map_index): ti for ti in tis})


def xcom(ti: Any, key: str = "return_value") -> Any:
    """The value a task instance pushed under ``key``, read from the metadata DB."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(
                dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, map_index=ti.map_index, key=key
            )
            .one()
        )
        return XComModel.deserialize_value(row)


def completed_generation(luma_conn_id: str, prompt: str = "a red bicycle", **fields: Any) -> dict[str, Any]:
    """
    Submit a generation to the emulator, wait (bounded) until it is completed, and return a result dict.

    The dict has the shape ``LumaGenerateImageOperator`` returns, so the upload can read the request.
    """
    from airflow_provider_luma.hooks.luma import LumaHook
    from airflow_provider_luma.models import GenerationRequest

    request = GenerationRequest.build(prompt=prompt, **fields)
    with LumaHook(luma_conn_id=luma_conn_id) as hook:
        generation = hook.create_generation(request)
        deadline = time.monotonic() + 20
        while not generation.is_terminal:
            if time.monotonic() > deadline:
                raise TimeoutError(f"generation {generation.id} still {generation.state.value}")
            time.sleep(0.02)
            generation = hook.get_generation(generation.id)
    assert generation.state.value == "completed", generation.summary()
    return {
        **generation.summary(),
        "estimated_cost_usd": request.estimated_cost_usd(),
        "request": request.describe(),
    }


def emulator_bytes(luma_conn_id: str, generation_id: str) -> bytes:
    """The output's bytes fetched straight from a fresh URL, not through the code under test."""
    import httpx

    from airflow_provider_luma.hooks.luma import LumaHook

    with LumaHook(luma_conn_id=luma_conn_id) as hook:
        url = hook.get_generation(generation_id).output[0].url
    response = httpx.get(url)
    response.raise_for_status()
    return response.content


def task_context(task_id: str = "upload") -> dict[str, Any]:
    """The parts of an Airflow context the upload reads, for tests that call ``execute`` directly."""
    ti = SimpleNamespace(dag_id="unit", task_id=task_id, run_id="manual__1", map_index=-1, try_number=1)
    return {"ti": ti}
