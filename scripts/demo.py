"""
See the provider work on this machine, with no API key and no network: ``make demo``.

The Luma emulator stands in for the Agents API on 127.0.0.1 with a few seconds of latency per
generation. Airflow runs from a private home (``./.airflow-home`` by default) on SQLite; the example
DAG ``example_dags/example_luma_marketing_refresh.py`` is run with ``dag.test()``: it generates one
image per prompt and stores each, with a metadata record, under ``./demo-output/``. The summary lists
every stored image (path, size, sha256, checked against its record) and what the emulator counted.

Options: ``--output DIR`` (or ``LUMA_DEMO_OUTPUT``), ``--airflow-home DIR`` (or ``LUMA_DEMO_AIRFLOW_HOME``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_provider_luma.testing import LumaEmulator

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_DAGS = REPO_ROOT / "example_dags"
EXAMPLE_DAG_FILE = EXAMPLE_DAGS / "example_luma_marketing_refresh.py"
EXAMPLE_DAG_ID = "example_luma_marketing_refresh"
#: Demo latencies: long enough to watch the wait, short enough not to bore.
QUEUED_SECONDS = 1.0
PROCESSING_SECONDS = 2.0
LONG_EDGE = 512


class DemoError(Exception):
    """A failure explained in one message, shown without a traceback."""


@dataclass(frozen=True)
class StoredImage:
    path: Path
    size: int
    sha256: str
    generation_id: str
    prompt: str
    estimated_cost_usd: float | None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=Path(os.environ.get("LUMA_DEMO_OUTPUT", REPO_ROOT / "demo-output")),
        help="where the images go (default: ./demo-output)",
    )
    parser.add_argument(
        "--airflow-home",
        type=Path,
        default=Path(os.environ.get("LUMA_DEMO_AIRFLOW_HOME", REPO_ROOT / ".airflow-home")),
        help="the Airflow home with its SQLite database (default: ./.airflow-home)",
    )
    return parser.parse_args(argv)


def configure_airflow(home: Path, output: Path, connection_json: str) -> None:
    """Point Airflow at the demo's home, DAGs and output; must run before Airflow is imported."""
    home.mkdir(parents=True, exist_ok=True)
    output.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            # dag.test() needs the DAG file inside the dags folder, and parses that whole folder.
            "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLE_DAGS),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR",
            "AIRFLOW__LUMA__OUTPUT_PATH": str(output),
            # The emulator's demo latency is 3 s: poll sooner than Luma's production advice.
            "AIRFLOW__LUMA__INITIAL_WAIT": "2",
            "AIRFLOW__LUMA__POLL_INTERVAL": "0.5",
            "AIRFLOW_CONN_LUMA_DEFAULT": connection_json,
        }
    )
    # The demo must never reach the real API with someone's key.
    os.environ.pop("LUMA_AGENTS_API_KEY", None)


def migrate_database() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
        raise DemoError(f"airflow db migrate failed ({result.returncode}):\n{tail}")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for chunk in iter(partial(source.read, 1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def run_example_dag(output: Path) -> list[StoredImage]:
    """Run the example DAG with dag.test(); return the images its run stored, each checked."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.2
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    bag = DagBag(dag_folder=str(EXAMPLE_DAG_FILE))
    if bag.import_errors:
        raise DemoError(f"{EXAMPLE_DAG_FILE.name} does not import: {bag.import_errors}")
    if EXAMPLE_DAG_ID not in bag.dags:
        raise DemoError(
            f"{EXAMPLE_DAG_FILE.name} defines no DAG {EXAMPLE_DAG_ID!r} (found {sorted(bag.dags)})"
        )
    run = bag.dags[EXAMPLE_DAG_ID].test()
    _print_task_states(run.id)
    if run.state != "success":
        raise DemoError(f"The DAG run {run.run_id} ended {run.state}; see the task logs above.")
    images = []
    for record_path in sorted(output.rglob("*.json")):
        record = _load_record(record_path)
        if record is None or record.get("airflow", {}).get("run_id") != run.run_id:
            continue
        image = record_path.with_name(record_path.name.removesuffix(".json"))
        images.append(_checked(image, record))
    if not images:
        raise DemoError(f"The DAG run {run.run_id} succeeded but stored no image under {output}.")
    return images


def _print_task_states(dag_run_id: int) -> None:
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        states = Counter(
            (ti.task_id, ti.state)
            for ti in session.get(DagRun, dag_run_id).get_task_instances(session=session)
        )
    for (task_id, state), count in sorted(states.items()):
        print(f"  task {task_id}: {count} x {state}")


def _load_record(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text())
    except ValueError:
        return None
    return record if isinstance(record, dict) and "generation_id" in record else None


def _checked(image: Path, record: dict[str, Any]) -> StoredImage:
    """The stored image, after checking its bytes against the metadata record written with it."""
    if not image.is_file():
        raise DemoError(f"{image} is missing although its metadata record is there.")
    stored = StoredImage(
        path=image,
        size=image.stat().st_size,
        sha256=sha256_of(image),
        generation_id=str(record["generation_id"]),
        prompt=str((record.get("request") or {}).get("prompt", "")),
        estimated_cost_usd=record.get("estimated_cost_usd"),
    )
    if (stored.size, stored.sha256) != (record.get("size"), record.get("sha256")):
        raise DemoError(f"{image} does not match its metadata record (size or sha256 differ).")
    return stored


def print_summary(mode: str, images: list[StoredImage], emulator: LumaEmulator, seconds: float) -> None:
    stats = emulator.stats
    print()
    print(f"Luma demo ({mode}) finished in {seconds:.1f} s: {len(images)} image(s) stored.")
    for image in images:
        print(f"  {image.path}")
        print(f"      {image.size} bytes  sha256 {image.sha256}")
        print(f"      generation {image.generation_id}  prompt: {image.prompt}")
    # One record per output: a generation's cost is counted once.
    costs = {image.generation_id: image.estimated_cost_usd or 0.0 for image in images}
    print(
        f"Estimated cost (Luma's list prices): {sum(costs.values()):.4f} USD for {len(costs)} generation(s)."
    )
    print(
        f"Emulator: {stats.generations_created} generation(s) created "
        f"({stats.requests['POST /v1/generations']} POST), "
        f"{stats.requests['GET /v1/generations/{id}']} status GET(s), "
        f"{stats.requests['GET output']} output download(s)."
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    output, home = args.output.resolve(), args.airflow_home.resolve()
    started = time.monotonic()
    from airflow_provider_luma.testing import LumaEmulator

    emulator = LumaEmulator(
        queued_seconds=QUEUED_SECONDS, processing_seconds=PROCESSING_SECONDS, long_edge=LONG_EDGE
    )
    try:
        with emulator:
            print(f"Luma emulator listening at {emulator.base_url} (no API key, no network needed)")
            configure_airflow(home, output, emulator.connection_json())
            print(f"Migrating the Airflow database in {home} ...")
            migrate_database()
            mode = f"DAG {EXAMPLE_DAG_ID} with dag.test()"
            print(f"Running {mode}; images go to {output} ...")
            images = run_example_dag(output)
            print_summary(mode, images, emulator, time.monotonic() - started)
    except DemoError as error:
        print(f"\nDemo failed: {error}", file=sys.stderr)
        return 1
    except Exception:
        print("\nDemo failed with an unexpected error:", file=sys.stderr)
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
