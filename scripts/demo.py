"""
See the provider work on a real local Airflow, with no API key and no network: ``make demo``.

The Luma emulator stands in for the Agents API on 127.0.0.1 (a few seconds per generation). A
private Airflow (``./.airflow-home``, SQLite) runs its real services: api-server on 127.0.0.1:8080,
scheduler, dag-processor and triggerer. The demo creates the pool ``luma_api`` (Luma's 10
concurrent jobs, deferred waits counted), unpauses ``luma_campaign_gallery`` and triggers
``luma_marketing_refresh``: one image per product and channel of the campaign file, generated with
the waits in the triggerer, stored under ``./demo-output/`` with a metadata record each, announced
as one batch, which starts the gallery DAG. It prints a progress line, then every image (checked
against its record), the manifest, the gallery page, the estimated cost and what ran where, and
stops everything it started.

Options: ``--keep-running`` leaves Airflow up (the UI at http://127.0.0.1:8080, login printed) until
Ctrl-C; ``--short`` generates two images (the test suite's mode); ``--port``; ``--output`` and
``--airflow-home``. With ``LUMA_AGENTS_API_KEY`` set, the demo uses the real API, after showing the
estimated cost and asking to go on (``--yes`` skips the question; ``--emulator`` ignores the key).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _demo_report import DemoError, failure_report, print_summary, stored_images

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_provider_luma.testing.airflow_services import AirflowServices

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_DAGS = REPO_ROOT / "example_dags"
CAMPAIGN_FILE = EXAMPLE_DAGS / "campaigns" / "spring_launch.json"
REFRESH_DAG, GALLERY_DAG = "luma_marketing_refresh", "luma_campaign_gallery"
#: Luma's default concurrent-jobs limit per account: the pool's size.
POOL_SLOTS = 10
REAL_API_URL = "https://agents.lumalabs.ai/v1"
SHORT_MAX_IMAGES = 2
#: (queued, processing) seconds per generation in the emulator: enough to watch the waits.
DEMO_LATENCY = {"normal": (1.0, 4.0), "short": (0.3, 1.0)}
RUN_TIMEOUT_SECONDS = 600


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--output", type=Path, default=Path(os.environ.get("LUMA_DEMO_OUTPUT", "demo-output"))
    )
    parser.add_argument(
        "--airflow-home", type=Path, default=Path(os.environ.get("LUMA_DEMO_AIRFLOW_HOME", ".airflow-home"))
    )
    parser.add_argument("--port", type=int, default=8080, help="the api-server's port on 127.0.0.1")
    parser.add_argument("--keep-running", action="store_true", help="leave Airflow up until Ctrl-C")
    parser.add_argument("--short", action="store_true", help=f"{SHORT_MAX_IMAGES} images, shortest latency")
    parser.add_argument("--emulator", action="store_true", help="the emulator even with LUMA_AGENTS_API_KEY")
    parser.add_argument("--yes", action="store_true", help="do not ask before spending on the real API")
    return parser.parse_args(argv)


def planned_generations(max_images: int | None) -> int:
    spec = json.loads(CAMPAIGN_FILE.read_text())
    rows = len(spec["products"]) * len(spec["channels"])
    return min(rows, max_images) if max_images else rows


def estimated_cost_usd(generations: int) -> float:
    """The list price of the refresh's requests: text-to-image uni-1, no input image."""
    from airflow_provider_luma.models.pricing import estimate_cost_of_described

    return generations * (estimate_cost_of_described({"model": "uni-1", "type": "image"}) or 0.0)


def confirmed(generations: int, assume_yes: bool) -> bool:
    """Ask before the real API is paid; only an explicit yes goes on."""
    print(
        f"LUMA_AGENTS_API_KEY is set: the demo will submit {generations} generation(s) to {REAL_API_URL}, "
        f"estimated {estimated_cost_usd(generations):.4f} USD at list price "
        "(pass --emulator to spend nothing)."
    )
    if assume_yes:
        return True
    try:
        answer = input("Go on and pay for them? [y/N] ")
    except EOFError:
        answer = ""
    return answer.strip().lower() in ("y", "yes")


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def watch(services: AirflowServices, dag_id: str, run_id: str, *, timeout: float) -> dict[str, Any]:
    """Wait for the run, showing how many task instances are done, deferred and running."""
    started = time.monotonic()
    tty = sys.stdout.isatty()
    last = ""
    while True:
        services.raise_if_exited()
        run = services.api_json("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
        states = [ti["state"] for ti in services.all_task_instances(dag_id, run_id)]
        done = sum(state in ("success", "skipped") for state in states)
        line = (
            f"  {dag_id}: {done}/{len(states)} done, {states.count('deferred')} deferred, "
            f"{states.count('running')} running, {states.count('failed')} failed "
            f"({time.monotonic() - started:.0f} s)"
        )
        if tty:
            print(f"\r{line}\033[K", end="", flush=True)
        elif line.split(" (")[0] != last.split(" (")[0]:
            print(line, flush=True)
        last = line
        if run["state"] in ("success", "failed"):
            if tty:
                print()
            return dict(run)
        if time.monotonic() - started > timeout:
            raise DemoError(f"{dag_id} run {run_id} did not finish within {timeout:.0f} s")
        time.sleep(1)  # the pace of a progress line, not a synchronisation


def triggered_gallery_run(services: AirflowServices, timeout: float) -> str:
    """The gallery run the refresh's Asset event started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        services.raise_if_exited()
        runs = services.api_json("GET", f"/dags/{GALLERY_DAG}/dagRuns")["dag_runs"]
        if runs:
            return str(runs[-1]["dag_run_id"])
        time.sleep(1)
    raise DemoError(f"The refresh's Asset event started no {GALLERY_DAG} run within {timeout:.0f} s")


def run_demo(services: AirflowServices, conf: dict[str, Any]) -> tuple[tuple[str, str], tuple[str, str]]:
    """Start Airflow, run the refresh and the gallery it triggers; the (dag id, run id) of both."""
    print(f"Starting Airflow in {services.home} (api-server on {services.base_url}) ...", flush=True)
    services.start()
    services.wait_for_dag(REFRESH_DAG)
    services.wait_for_dag(GALLERY_DAG)
    services.create_pool("luma_api", POOL_SLOTS, "Luma concurrent jobs", include_deferred=True)
    # Unpaused first, so that the refresh's Asset event finds a DAG to start.
    services.unpause(GALLERY_DAG)
    run_id = services.trigger_next_scheduled(REFRESH_DAG, conf)
    print(f"Triggered {REFRESH_DAG} ({run_id}):", flush=True)
    results = [(REFRESH_DAG, run_id, watch(services, REFRESH_DAG, run_id, timeout=RUN_TIMEOUT_SECONDS))]
    if results[0][2]["state"] == "success":
        gallery_run = triggered_gallery_run(services, timeout=120)
        print(f"The batch's Asset event started {GALLERY_DAG} ({gallery_run}):", flush=True)
        results.append((GALLERY_DAG, gallery_run, watch(services, GALLERY_DAG, gallery_run, timeout=300)))
    for dag_id, failed_run_id, run in results:
        if run["state"] != "success":
            raise DemoError(failure_report(services, dag_id, failed_run_id))
    return (REFRESH_DAG, run_id), (GALLERY_DAG, results[1][1])


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    output, home = args.output.resolve(), args.airflow_home.resolve()
    real_api = bool(os.environ.get("LUMA_AGENTS_API_KEY")) and not args.emulator
    max_images = SHORT_MAX_IMAGES if args.short else None
    generations = planned_generations(max_images)
    if real_api and not confirmed(generations, args.yes):
        print("Nothing was submitted.")
        return 0
    if not port_is_free(args.port):
        print(
            f"Port {args.port} on 127.0.0.1 is in use: stop what listens there or pass --port.",
            file=sys.stderr,
        )
        return 1

    from airflow_provider_luma.testing import LumaEmulator
    from airflow_provider_luma.testing.airflow_services import AirflowServices

    # A fresh deployment each time: no run, pool or asset event left from an earlier demo.
    shutil.rmtree(home, ignore_errors=True)
    output.mkdir(parents=True, exist_ok=True)
    queued, processing = DEMO_LATENCY["short" if args.short else "normal"]
    emulator = (
        None
        if real_api
        else LumaEmulator(queued_seconds=queued, processing_seconds=processing, long_edge=512)
    )
    password = secrets.token_urlsafe(12)
    try:
        if emulator is not None:
            emulator.start()
            print(f"Luma emulator listening at {emulator.base_url} (no API key, no network needed)")
            connection = emulator.connection_json()
        else:
            key = os.environ["LUMA_AGENTS_API_KEY"]
            connection = json.dumps({"conn_type": "luma", "host": REAL_API_URL, "password": key})
        services = AirflowServices(
            home=home,
            dags_folder=EXAMPLE_DAGS,
            port=args.port,
            login=("admin", password),
            extra_env={
                "AIRFLOW_CONN_LUMA_DEFAULT": connection,
                "AIRFLOW__LUMA__OUTPUT_PATH": output.as_uri(),
                # The emulator's generations take seconds: poll sooner than Luma's production advice.
                **(
                    {"AIRFLOW__LUMA__INITIAL_WAIT": "1", "AIRFLOW__LUMA__POLL_INTERVAL": "0.5"}
                    if emulator
                    else {}
                ),
                "AIRFLOW__CORE__PARALLELISM": "4",
            },
        )
        started = time.monotonic()
        try:
            runs = run_demo(services, {"max_images": max_images})
            images = stored_images(services, *runs[0])
            print_summary(services, runs, images, emulator, time.monotonic() - started)
            if args.keep_running:
                print(f"\nAirflow keeps running: open {services.base_url} and log in as admin / {password}")
                print("The Luma view of the images is under Browse > Luma images. Ctrl-C stops everything.")
                threading.Event().wait()
        finally:
            pids = services.pids()
            services.stop()
            print(f"Stopped the Airflow services (process groups {', '.join(map(str, pids))}).")
    except DemoError as error:
        print(f"\nDemo failed: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nInterrupted: everything the demo started is stopped.")
        return 130
    finally:
        if emulator is not None:
            emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
