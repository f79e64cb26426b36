"""
Worker slot-seconds per generation: ``LumaGenerateImageOperator`` deferrable vs polling on the worker.

A worker slot is what a deployment pays for (Celery/Kubernetes capacity): with ``deferrable=False``
the task holds its slot for the whole generation (uni-1 p50 is ~30 s), with ``deferrable=True`` only
for the submission and the resume, while the triggerer waits. This script runs both through real
Airflow ``dag.test()`` (a SQLite metadata DB in a temporary AIRFLOW_HOME, the DAG file written into
its ``[core] dags_folder``) against the emulator over HTTP on 127.0.0.1, with the generation latency
scaled down (3 s in ``--quick``, 10 s by default) and the provider's timing scaled alike (first GET
after 20 s x scale, then every 2 s x scale), so the run is Luma's timing on a faster clock.

Worker time is measured two ways, side by side in one run:

- operator: a small subclass in the DAG file times ``execute()`` (for the deferrable path, until it
  raises ``TaskDeferred``) and ``execute_complete()``, wall clock around the calls;
- task runner: each call of Airflow's in-process task runner (``run_task_in_process``, which
  ``dag.test()`` makes once per phase: render, execute, XCom push, state updates), timed around.

A warm-up DAG (one no-op task) runs first: the first task run of a process builds the in-process
execution API (seconds), which would otherwise be charged to whichever mode runs first.
``dag.test()`` runs the trigger inline between the two phases (also timed, shown as the deferred
wait: the triggerer's time, not the worker's). The TI's own ``start_date``/``end_date`` are printed
for reference: for the deferrable path they span the deferral, so they are not the worker's time.
The polling path's wait (``polling.wait_for_generation``) is timed too, to extrapolate to Luma's
30 s: that wait scales with the latency, the rest does not. A real worker also starts a task process
and parses the DAG file once per phase (twice for the deferrable path); ``dag.test()`` runs in-process,
so that cost (see ``bench_import_cost.py``) is not in these figures.

    .venv/bin/python benchmarks/bench_worker_slots.py [--quick] [--latency S] [--generations N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import emit, table

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

#: Luma's stated p50 for uni-1 (luma-api.md §4.4): what the figures are extrapolated to.
LUMA_P50_SECONDS = 30.0
MODES = {"deferrable": True, "polling": False}

DAG_FILE = '''
"""Benchmark DAGs: one mapped LumaGenerateImageOperator per mode, its phases timed."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from typing import Any

from airflow.sdk import DAG, BaseOperator

from airflow_provider_luma.operators.luma import LumaGenerateImageOperator

PROMPTS = json.loads(os.environ["LUMA_BENCH_PROMPTS"])


def _record(context: Any, phase: str, started: float, outcome: str) -> None:
    ti = context["ti"]
    entry = {
        "task_id": ti.task_id, "map_index": ti.map_index, "dag_id": ti.dag_id, "phase": phase,
        "started": started, "ended": time.time(), "outcome": outcome,
    }
    with open(os.environ["LUMA_BENCH_PHASES"], "a") as phases:
        phases.write(json.dumps(entry) + "\\n")


class TimedGenerate(LumaGenerateImageOperator):
    """The operator, its two worker phases timed (wall clock) around the real methods."""

    def execute(self, context: Any) -> Any:
        started, outcome = time.time(), "returned"
        try:
            return super().execute(context)
        except BaseException as error:
            outcome = type(error).__name__
            raise
        finally:
            _record(context, "execute", started, outcome)

    def execute_complete(self, context: Any, event: Any = None, **kwargs: Any) -> Any:
        started, outcome = time.time(), "returned"
        try:
            return super().execute_complete(context, event, **kwargs)
        except BaseException as error:
            outcome = type(error).__name__
            raise
        finally:
            _record(context, "execute_complete", started, outcome)


class Noop(BaseOperator):
    def execute(self, context: Any) -> None:
        return None


# Run first: the in-process execution API is built on the first task run of a process (seconds).
with DAG(dag_id="bench_worker_slots_warmup", schedule=None, start_date=datetime(2026, 1, 1)):
    Noop(task_id="noop")

for _mode, _deferrable in (("deferrable", True), ("polling", False)):
    with DAG(dag_id=f"bench_worker_slots_{_mode}", schedule=None, start_date=datetime(2026, 1, 1)):
        TimedGenerate.partial(task_id="generate", deferrable=_deferrable, timeout=600).expand(prompt=PROMPTS)
'''


class Timings:
    """Wall-clock intervals of the wrapped calls, by name."""

    def __init__(self) -> None:
        self.calls: dict[str, list[tuple[float, float]]] = {}

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.time()
            try:
                return function(*args, **kwargs)
            finally:
                self.calls.setdefault(name, []).append((started, time.time()))

        return timed

    def total(self, name: str) -> float:
        return sum(end - start for start, end in self.calls.get(name, []))

    def count(self, name: str) -> int:
        return len(self.calls.get(name, []))


@contextmanager
def _timed_airflow(timings: Timings) -> Iterator[None]:
    """Time the task runner's phases, the inline trigger and the worker's own wait loop."""
    import airflow.sdk.definitions.dag as sdk_dag
    import airflow.sdk.execution_time.supervisor as supervisor

    from airflow_provider_luma import polling

    with ExitStack() as patches:
        # dag.test() imports run_task_in_process from the module at each call: patch the module.
        for target, name, label in (
            (supervisor, "run_task_in_process", "task_runner"),
            (sdk_dag, "_run_inline_trigger", "inline_trigger"),
            (polling, "wait_for_generation", "worker_wait"),
        ):
            patches.enter_context(mock.patch.object(target, name, timings.wrap(label, getattr(target, name))))
        yield


def _prepare_airflow_home(home: Path) -> Path:
    dags = home / "dags"
    dags.mkdir()
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "LUMA_BENCH_PHASES": str(home / "phases.jsonl"),
        }
    )
    os.environ.pop("LUMA_AGENTS_API_KEY", None)
    dag_file = dags / "bench_worker_slots_dags.py"
    dag_file.write_text(DAG_FILE)
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        env=os.environ.copy(),
        capture_output=True,
    )
    return dag_file


def _run_dag(dag_file: Path, dag_id: str) -> dict[str, Any]:
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.2
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    bag = DagBag(dag_folder=str(dag_file))
    assert not bag.import_errors, bag.import_errors
    timings = Timings()
    started = time.time()
    with _timed_airflow(timings):
        run = bag.dags[dag_id].test()
    wall = time.time() - started
    with create_session() as session:
        stored = session.get(DagRun, run.id)
        assert stored is not None
        tis = stored.get_task_instances(session=session)
        ti_spans = [
            (ti.end_date - ti.start_date).total_seconds() for ti in tis if ti.start_date and ti.end_date
        ]
        states = sorted({str(ti.state) for ti in tis})
    return {
        "run_state": str(run.state),
        "ti_states": states,
        "ti_spans": ti_spans,
        "wall": wall,
        "timings": timings,
    }


def _operator_phases(phases_file: Path, mode: str) -> list[dict[str, Any]]:
    entries = [json.loads(line) for line in phases_file.read_text().splitlines()]
    return [entry for entry in entries if entry["dag_id"] == f"bench_worker_slots_{mode}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s generations, 1 per mode")
    parser.add_argument("--latency", type=float, help="emulated seconds from submission to completion")
    parser.add_argument("--generations", type=int, help="generations per mode (a mapped task)")
    args = parser.parse_args()
    latency = args.latency or (3.0 if args.quick else 10.0)
    generations = args.generations or (1 if args.quick else 3)
    scale = latency / LUMA_P50_SECONDS

    with tempfile.TemporaryDirectory(prefix="luma-bench-slots-") as home_name:
        home = Path(home_name)
        dag_file = _prepare_airflow_home(home)
        os.environ["LUMA_BENCH_PROMPTS"] = json.dumps([f"a lighthouse, take {i}" for i in range(generations)])

        from airflow_provider_luma import polling
        from airflow_provider_luma.testing import LumaEmulator

        initial_wait = polling.DEFAULT_INITIAL_WAIT * scale
        poll_interval = polling.DEFAULT_POLL_INTERVAL * scale
        # Read by the operator when the DAG file is parsed ([luma] initial_wait / poll_interval).
        os.environ["AIRFLOW__LUMA__INITIAL_WAIT"] = str(initial_wait)
        os.environ["AIRFLOW__LUMA__POLL_INTERVAL"] = str(poll_interval)

        results: dict[str, dict[str, Any]] = {}
        with LumaEmulator(
            queued_seconds=0.2 * latency,
            processing_seconds=0.8 * latency,
            long_edge=64,
            rpm_limit=1000,
            concurrency_limit=100,
        ) as emulator:
            os.environ["AIRFLOW_CONN_LUMA_DEFAULT"] = emulator.connection_json()
            warmup = _run_dag(dag_file, "bench_worker_slots_warmup")
            assert warmup["run_state"].endswith("success"), warmup
            for mode in MODES:
                before = emulator.stats
                results[mode] = _run_dag(dag_file, f"bench_worker_slots_{mode}")
                after = emulator.stats
                results[mode]["posts"] = after.generations_created - before.generations_created
                results[mode]["gets"] = (
                    after.requests["GET /v1/generations/{id}"] - before.requests["GET /v1/generations/{id}"]
                )
        for mode in MODES:
            results[mode]["phases"] = _operator_phases(home / "phases.jsonl", mode)

    rows: list[dict[str, Any]] = []
    for mode, result in results.items():
        timings: Timings = result["timings"]
        phases = result["phases"]
        assert result["run_state"].endswith("success"), (mode, result["run_state"], result["ti_states"])
        assert result["posts"] == generations, (mode, result["posts"])
        operator_s = sum(p["ended"] - p["started"] for p in phases) / generations
        runner_s = timings.total("task_runner") / generations
        wait_s = timings.total("worker_wait") / generations
        submit_s = [p["ended"] - p["started"] for p in phases if p["phase"] == "execute"]
        resume_s = [p["ended"] - p["started"] for p in phases if p["phase"] == "execute_complete"]
        # At Luma's p50: the wait grows with the latency, the rest of the worker's time does not.
        factor = LUMA_P50_SECONDS / latency
        rows.append(
            {
                "mode": mode,
                "generations": generations,
                "latency_s": latency,
                "scale_vs_luma_p50": scale,
                "operator_worker_s_per_generation": operator_s,
                "runner_worker_s_per_generation": runner_s,
                "execute_s_median": statistics.median(submit_s),
                "execute_complete_s_median": statistics.median(resume_s) if resume_s else None,
                "worker_wait_s_per_generation": wait_s,
                "inline_trigger_s_per_generation": timings.total("inline_trigger") / generations,
                "task_runner_calls": timings.count("task_runner"),
                "ti_span_s_median": statistics.median(result["ti_spans"]) if result["ti_spans"] else None,
                "gets_per_generation": result["gets"] / generations,
                "dag_test_wall_s": result["wall"],
                "operator_worker_s_at_p50": operator_s + wait_s * (factor - 1),
                "runner_worker_s_at_p50": runner_s + wait_s * (factor - 1),
            }
        )
    deferrable, polling_row = rows
    ratios = {
        "operator": polling_row["operator_worker_s_per_generation"]
        / deferrable["operator_worker_s_per_generation"],
        "runner": polling_row["runner_worker_s_per_generation"]
        / deferrable["runner_worker_s_per_generation"],
        "operator_at_p50": polling_row["operator_worker_s_at_p50"] / deferrable["operator_worker_s_at_p50"],
        "runner_at_p50": polling_row["runner_worker_s_at_p50"] / deferrable["runner_worker_s_at_p50"],
    }

    def s(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f} s"

    print(
        f"\ndag.test() against the emulator: {generations} generation(s) per mode, each done {latency:g} s "
        f"after its submission (x{scale:.3f} Luma's p50 of ~{LUMA_P50_SECONDS:g} s); timing scaled alike: "
        f"first GET after {initial_wait:.2f} s, then every {poll_interval:.2f} s.\n"
    )
    print(
        table(
            [
                "mode",
                "worker s/gen (operator)",
                "worker s/gen (task runner)",
                "execute",
                "execute_complete",
                "of which waiting",
                "deferred wait (triggerer)",
                "TI start->end",
                "GETs/gen",
            ],
            [
                [
                    row["mode"],
                    s(row["operator_worker_s_per_generation"]),
                    s(row["runner_worker_s_per_generation"]),
                    s(row["execute_s_median"]),
                    s(row["execute_complete_s_median"]),
                    s(row["worker_wait_s_per_generation"]),
                    s(row["inline_trigger_s_per_generation"]),
                    s(row["ti_span_s_median"]),
                    f"{row['gets_per_generation']:.1f}",
                ]
                for row in rows
            ],
        )
    )
    print(
        f"\npolling / deferrable worker time, measured at {latency:g} s: x{ratios['operator']:.1f} "
        f"(operator), x{ratios['runner']:.1f} (task runner)"
    )
    print(f"extrapolated to Luma's p50 ({LUMA_P50_SECONDS:g} s, the polling wait scaled x{1 / scale:g}):")
    print(
        table(
            ["mode", "worker s/gen (operator)", "worker s/gen (task runner)"],
            [
                [row["mode"], s(row["operator_worker_s_at_p50"]), s(row["runner_worker_s_at_p50"])]
                for row in rows
            ],
        )
    )
    extra_slot_hours = (
        (polling_row["runner_worker_s_at_p50"] - deferrable["runner_worker_s_at_p50"]) * 1000 / 3600
    )
    print(
        f"ratio at {LUMA_P50_SECONDS:g} s: x{ratios['operator_at_p50']:.0f} (operator), "
        f"x{ratios['runner_at_p50']:.0f} (task runner): polling costs {extra_slot_hours:.1f} more worker "
        "slot-hours per 1000 generations.\n"
        "Not included (dag.test() runs tasks in-process): a real worker also starts a task process and "
        "parses the DAG file per phase, once when polling and twice when deferrable (seconds on this "
        "machine: see bench_import_cost.py): that narrows the ratio, and the saving shrinks by one "
        "start-up per generation."
    )
    emit(
        "worker_slots",
        rows,
        mode="quick" if args.quick else "full",
        ratios=ratios,
        worker_time="operator: wall clock around execute()/execute_complete(); task runner: around "
        "dag.test()'s run_task_in_process per phase",
    )


if __name__ == "__main__":
    main()
