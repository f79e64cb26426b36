"""
Peak memory of LumaUploadOutputsOperator for a ~1 MB and a ~50 MB output: it should not grow with size.

The emulator (in this process) serves PNG outputs padded to each size. Each upload runs in a fresh
subprocess, which reports its peak RSS (``ru_maxrss``) after importing everything and after the upload;
the difference between the two sizes is what the upload itself costs per byte of image.

    .venv/bin/python benchmarks/bench_upload_memory.py [--sizes-mb 1 50]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace

MB = 1024 * 1024


def _peak_rss_mb() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(generation_id: str, destination: str) -> None:
    """Upload one generation (connection from the environment) and print peak RSS figures as JSON."""
    from airflow_provider_luma.hooks.luma import LumaHook  # noqa: F401  (import cost before the baseline)
    from airflow_provider_luma.lineage import GenerationLineage  # noqa: F401
    from airflow_provider_luma.operators.luma import LumaUploadOutputsOperator

    operator = LumaUploadOutputsOperator(task_id="bench", generation=generation_id, destination=destination)
    baseline = _peak_rss_mb()
    started = time.perf_counter()
    ti = SimpleNamespace(dag_id="bench", task_id="bench", run_id="bench", map_index=-1, try_number=1)
    manifest = operator.execute({"ti": ti})  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    output = manifest["outputs"][0]
    print(
        json.dumps(
            {
                "baseline_mb": baseline,
                "peak_mb": _peak_rss_mb(),
                "seconds": elapsed,
                "size": output["size"],
                "sha256": output["sha256"],
                "path": output["uri"].removeprefix("file://"),
            }
        )
    )


def _create_completed(emulator: object, prompt: str) -> str:
    import httpx

    headers = {"Authorization": f"Bearer {emulator.api_key}"}  # type: ignore[attr-defined]
    base = emulator.base_url  # type: ignore[attr-defined]
    body = {"prompt": prompt, "output_format": "png"}
    created = httpx.post(f"{base}/generations", json=body, headers=headers)
    created.raise_for_status()
    generation_id = created.json()["id"]
    emulator.set_state(generation_id, "completed")  # type: ignore[attr-defined]
    return generation_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[1, 50])
    parser.add_argument("--child", nargs=2, metavar=("GENERATION_ID", "DESTINATION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    from airflow_provider_luma.testing import LumaEmulator

    results = []
    with LumaEmulator(queued_seconds=0, processing_seconds=0, long_edge=256) as emulator:
        for size_mb in args.sizes_mb:
            emulator.configure(output_padding_bytes=size_mb * MB)
            generation_id = _create_completed(emulator, f"benchmark output of {size_mb} MB")
            with tempfile.TemporaryDirectory(prefix="luma-bench-") as destination:
                env = {
                    **os.environ,
                    "AIRFLOW_CONN_LUMA_DEFAULT": emulator.connection_json(),
                    "AIRFLOW_HOME": destination,
                    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                }
                completed = subprocess.run(
                    [sys.executable, __file__, "--child", generation_id, destination],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                figures = json.loads(completed.stdout.strip().splitlines()[-1])
                with open(figures["path"], "rb") as stored:
                    assert hashlib.file_digest(stored, "sha256").hexdigest() == figures["sha256"]
            figures["size_mb"] = figures["size"] / MB
            results.append(figures)
            print(
                f"output {figures['size_mb']:7.1f} MB: peak RSS {figures['peak_mb']:7.1f} MB "
                f"(after imports {figures['baseline_mb']:7.1f} MB, upload adds "
                f"{figures['peak_mb'] - figures['baseline_mb']:5.1f} MB), {figures['seconds']:.2f} s, "
                f"{figures['size_mb'] / figures['seconds']:.0f} MB/s"
            )
    smallest, largest = results[0], results[-1]
    print(
        f"peak RSS delta between the {largest['size_mb']:.1f} MB and {smallest['size_mb']:.1f} MB outputs: "
        f"{largest['peak_mb'] - smallest['peak_mb']:+.1f} MB "
        f"(the image grew by {largest['size_mb'] - smallest['size_mb']:.1f} MB)"
    )


if __name__ == "__main__":
    main()
