"""
Real Airflow runs (``dag.test()``) of the DAG files in ``tests/dags/`` against the emulator over HTTP:
deferrable and worker modes, an edit chained on an upstream id, a mapped task, a sensor, and a task
whose first try dies after the POST and whose second try reattaches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support import run_dag, xcom

pytestmark = pytest.mark.usefixtures("airflow_db", "luma_connection")

DAGS = Path(__file__).resolve().parents[1] / "dags"


@pytest.mark.parametrize("mode", ["deferrable", "worker"])
def test_chain_edit_mapped_and_sensor(luma_emulator: Any, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    state, _, tis = run_dag(monkeypatch, DAGS / "generate_chain.py", f"luma_generate_chain_{mode}")
    assert state == "success", {key: ti.state for key, ti in tis.items()}
    assert all(ti.state == "success" for ti in tis.values())
    # generate + edit + 3 variants + submit_only: six generations, each paid once.
    assert luma_emulator.stats.generations_created == 6

    generated = xcom(tis[("generate", -1)])
    assert generated["state"] == "completed" and generated["output_count"] == 1
    assert generated["billed_this_try"] is True
    assert generated["request"]["prompt"] == "a lighthouse at dusk, oil painting"
    edited = xcom(tis[("edit", -1)])
    assert edited["type"] == "image_edit"
    assert edited["request"]["source"] == {"generation_id": generated["generation_id"]}
    prompts = sorted(xcom(tis[("variants", index)])["request"]["prompt"] for index in range(3))
    assert prompts == ["a blue whale", "a green parrot", "a red fox"]
    waited = xcom(tis[("wait", -1)])
    assert waited["generation_id"] == xcom(tis[("submit_only", -1)], "generation_id")
    assert waited["state"] == "completed"


@pytest.mark.latest_airflow  # task_state_store is new in Airflow 3.3
@pytest.mark.parametrize("mode", ["deferrable", "worker"])
def test_second_try_reattaches_instead_of_paying_again(
    luma_emulator: Any, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    state, _, tis = run_dag(monkeypatch, DAGS / "generate_reattach.py", f"luma_generate_reattach_{mode}")
    ti = tis[("generate", -1)]
    assert state == "success"
    assert ti.try_number == 2
    assert luma_emulator.stats.generations_created == 1
    assert luma_emulator.stats.requests["POST /v1/generations"] == 1
    result = xcom(ti)
    # The generation is reported, and costs what it costs, but this try did not pay for it.
    assert result["billed_this_try"] is False and result["estimated_cost_usd"] == 0.0404
    assert result["abandoned_generations"] == []


def test_example_dag_parses_and_validates_its_literals() -> None:
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.2
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    example = Path(__file__).resolve().parents[2] / "example_dags" / "example_luma_generate.py"
    bag = DagBag(dag_folder=str(example))
    assert not bag.import_errors
    dag = bag.dags["example_luma_generate"]
    assert {task.task_id for task in dag.tasks} == {"hero", "night", "variants"}
    assert dag.get_task("hero").deferrable is True
