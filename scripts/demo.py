"""
See the provider work on a real local Airflow, with no API key and no network: ``make demo``.

The Luma emulator stands in for the Agents API on 127.0.0.1 (a few seconds per generation). A
private Airflow (``./.airflow-home``, SQLite, fresh each run) runs its real services: api-server on
127.0.0.1:8080, scheduler, dag-processor and triggerer (no log servers). The demo creates the pool
``luma_api`` (Luma's 10 concurrent jobs, deferred waits counted), unpauses ``luma_campaign_gallery``
and triggers ``luma_marketing_refresh``: one image per product and channel of the campaign file,
generated with the waits in the triggerer, stored under ``./demo-output/`` with a metadata record
each, announced as one batch, which starts the gallery DAG. It prints a progress line, then every
image (checked against its record), the manifest, the gallery page, the estimated cost and what ran
where, and stops everything it started. When something fails it names the failed tasks and shows
the end of their logs, and exits non-zero.

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
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import quote

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _demo_report import DemoError, failure_report, print_summary, stored_images

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import FrameType

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
#: How long the refresh may take: the emulator's nine images take about a minute on 2 cores.
RUN_TIMEOUT_SECONDS = {"emulator": 600, "real": 1800}
GALLERY_TIMEOUT_SECONDS = 300
#: Written into the Airflow home the demo makes: only such a folder is deleted on the next run.
HOME_MARKER = ".luma-demo-home"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "demo-output", help="where images go")
    parser.add_argument(
        "--airflow-home", type=Path, default=REPO_ROOT / ".airflow-home", help="emptied on every run"
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


def fresh_home(home: Path) -> None:
    """
    An empty Airflow home: no run, pool or Asset event of an earlier demo changes this one. Only a
    folder this demo made (or an empty one) is deleted, so a mistyped ``--airflow-home`` loses nothing.
    """
    if home.exists() and any(home.iterdir()) and not (home / HOME_MARKER).exists():
        raise DemoError(f"{home} is not empty and not a demo's Airflow home: pass another --airflow-home")
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    (home / HOME_MARKER).write_text("Made by scripts/demo.py, which empties this folder on its next run.\n")


def watch(services: AirflowServices, dag_id: str, run_id: str, *, timeout: float) -> dict[str, Any]:
    """Wait for the run, showing how many task instances are done, deferred and running."""
    started = time.monotonic()
    tty = sys.stdout.isatty()
    shown = None
    while True:
        services.raise_if_exited()
        run = services.api_json("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
        progress = services.progress(dag_id, run_id)
        line = f"  {dag_id}: {progress} ({time.monotonic() - started:.0f} s)"
        if tty:
            print(f"\r{line}\033[K", end="", flush=True)
        elif progress != shown:
            # A log, not a terminal: a line per change, not one per second.
            print(line, flush=True)
        shown = progress
        if run["state"] in ("success", "failed"):
            if tty:
                print()
            return dict(run)
        if time.monotonic() - started > timeout:
            raise DemoError(
                f"{dag_id} run {run_id} did not finish within {timeout:.0f} s ({progress}).\n"
                f"The services' logs end:\n{services.log_tails(15)}"
            )
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


def run_demo(
    services: AirflowServices, conf: dict[str, Any], timeout: float
) -> tuple[tuple[str, str], tuple[str, str]]:
    """Start Airflow, run the refresh and the gallery it triggers; the (dag id, run id) of both."""
    print(f"Starting Airflow in {services.home} (api-server on {services.base_url}) ...", flush=True)
    services.start()
    print(
        "  started " + ", ".join(f"{s.name} (pid {s.process.pid})" for s in services.services),
        flush=True,
    )
    services.wait_for_dag(REFRESH_DAG)
    services.wait_for_dag(GALLERY_DAG)
    services.create_pool("luma_api", POOL_SLOTS, "Luma concurrent jobs", include_deferred=True)
    print(f"  pool luma_api: {POOL_SLOTS} slots, deferred tasks counted", flush=True)
    # Unpaused first, so that the refresh's Asset event finds a DAG to start. The other example DAGs
    # stay paused, as Airflow creates them.
    services.unpause(GALLERY_DAG)
    run_id = services.trigger_next_scheduled(REFRESH_DAG, conf)
    print(f"Triggered {REFRESH_DAG} ({run_id}):", flush=True)
    results = [(REFRESH_DAG, run_id, watch(services, REFRESH_DAG, run_id, timeout=timeout))]
    if results[0][2]["state"] == "success":
        gallery_run = triggered_gallery_run(services, timeout=120)
        print(f"The batch's Asset event started {GALLERY_DAG} ({gallery_run}):", flush=True)
        results.append(
            (
                GALLERY_DAG,
                gallery_run,
                watch(services, GALLERY_DAG, gallery_run, timeout=GALLERY_TIMEOUT_SECONDS),
            )
        )
    for dag_id, failed_run_id, run in results:
        if run["state"] != "success":
            raise DemoError(failure_report(services, dag_id, failed_run_id))
    return (REFRESH_DAG, run_id), (GALLERY_DAG, results[1][1])


def keep_running(services: AirflowServices, refresh_run: str, password: str) -> None:
    """Leave everything up for a look in the UI, until Ctrl-C."""
    print(f"\nAirflow keeps running. Open {services.base_url} and log in as admin / {password}")
    print(f"  the refresh's run: {services.base_url}/dags/{REFRESH_DAG}/runs/{quote(refresh_run, safe='')}")
    print("  the images: Browse > Luma images. Ctrl-C stops everything.", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print()


def stop(services: AirflowServices) -> None:
    """Stop every service by its process group; a second Ctrl-C must not leave half of them running."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        pids = services.pids()
        if pids:
            print("Stopping the Airflow services ...", flush=True)
        services.stop()
        if pids:
            print(f"Stopped the Airflow services (process groups {', '.join(map(str, pids))}).", flush=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _interrupted(signum: int, frame: FrameType | None) -> NoReturn:
    # SIGTERM (a closed terminal, a CI timeout) stops everything the way Ctrl-C does. So does
    # SIGINT where the shell started the demo with it ignored (a background job): Python then
    # installs no Ctrl-C handler of its own, and a `kill -INT` would be lost.
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupted)
    output, home = args.output.resolve(), args.airflow_home.resolve()
    # Out of the environment the services inherit: a stray key must not reach the emulator run's tasks,
    # and the real run's tasks read it from the connection (where Airflow masks it).
    key = os.environ.pop("LUMA_AGENTS_API_KEY", "").strip()
    real_api = bool(key) and not args.emulator
    max_images = SHORT_MAX_IMAGES if args.short else None
    if real_api and not confirmed(planned_generations(max_images), args.yes):
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

    queued, processing = DEMO_LATENCY["short" if args.short else "normal"]
    emulator = (
        None
        if real_api
        else LumaEmulator(queued_seconds=queued, processing_seconds=processing, long_edge=512)
    )
    services: AirflowServices | None = None
    password = secrets.token_urlsafe(12)
    try:
        fresh_home(home)
        output.mkdir(parents=True, exist_ok=True)
        if emulator is not None:
            emulator.start()
            print(f"Luma emulator listening at {emulator.base_url} (no API key, no network needed)")
            connection = emulator.connection_json()
        else:
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
                # Four task processes: the refresh's generate and upload tasks overlap.
                "AIRFLOW__CORE__PARALLELISM": "4",
            },
        )
        started = time.monotonic()
        runs = run_demo(
            services, {"max_images": max_images}, RUN_TIMEOUT_SECONDS["real" if real_api else "emulator"]
        )
        print_summary(services, runs, stored_images(services, *runs[0]), emulator, time.monotonic() - started)
        if args.keep_running:
            keep_running(services, runs[0][1], password)
        return 0
    except KeyboardInterrupt:
        print("\nInterrupted: stopping everything the demo started.", file=sys.stderr)
        return 130
    except (DemoError, RuntimeError, TimeoutError, httpx.HTTPError) as error:
        # The harness names a service that died, with its log; an HTTP error is the api-server's.
        print(f"\nDemo failed: {error}", file=sys.stderr)
        if isinstance(error, (TimeoutError, httpx.HTTPError)) and services is not None:
            print(f"The services' logs end:\n{services.log_tails(15)}", file=sys.stderr)
        return 1
    finally:
        if services is not None:
            stop(services)
        if emulator is not None:
            emulator.stop()


if __name__ == "__main__":
    sys.exit(main())
