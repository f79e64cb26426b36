"""
Peak memory of sending a storage image to Luma: as an uploaded file (``upload_inputs=True``) against
inline base64 (``upload_inputs=False``), for a ~1 MB and a ~40 MB image, side by side in one run.

The emulator (in this process) takes the upload. Each measurement runs in a fresh subprocess, which
reports its peak RSS (``ru_maxrss``) after importing everything (the baseline) and after the work:
staging and uploading the file through the Files API (spooled, hashed and streamed), or reading it
into the base64 request the inline path POSTs (and fingerprinting it, as the operator does).

    .venv/bin/python benchmarks/bench_input_upload_memory.py [--sizes-mb 1 40]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

from _report import emit

MB = 1024 * 1024
#: A PNG's signature and header chunk, then padding: the emulator judges an image by its first bytes.
_PNG_HEAD = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"


def _peak_rss_mb() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(mode: str, path: str) -> None:
    """Send ``path`` one way (connection from the environment) and print peak RSS figures as JSON."""
    import logging

    from airflow.sdk import ObjectStoragePath

    from airflow_provider_luma.hooks.luma import LumaHook
    from airflow_provider_luma.models import GenerationRequest
    from airflow_provider_luma.operators._inputs import StagedInputs
    from airflow_provider_luma.storage import read_storage_image

    source = ObjectStoragePath(f"file://{path}")
    with LumaHook() as hook:
        hook.get_conn()
        baseline = _peak_rss_mb()
        started = time.perf_counter()
        if mode == "file":
            with StagedInputs(logging.getLogger("bench")) as staged:
                ref = staged.add(source, "image_ref[0]")
                request = GenerationRequest(prompt="x", image_ref=(ref,))
                staged.fingerprint(request)
                staged.resolve(hook, request)
        else:
            request = GenerationRequest(prompt="x", image_ref=(read_storage_image(source, "image_ref[0]"),))
            request.fingerprint()
            # What the POST carries: the JSON body, base64 and all.
            json.dumps(request.to_json())
        elapsed = time.perf_counter() - started
    print(json.dumps({"baseline_mb": baseline, "peak_mb": _peak_rss_mb(), "seconds": elapsed}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[1, 40])
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    from airflow_provider_luma.testing import LumaEmulator

    rows: dict[tuple[str, int], dict[str, float]] = {}
    with (
        LumaEmulator(queued_seconds=0, processing_seconds=0) as emulator,
        tempfile.TemporaryDirectory(prefix="luma-bench-") as folder,
    ):
        for size_mb in args.sizes_mb:
            path = os.path.join(folder, f"input-{size_mb}.png")
            with open(path, "wb") as handle:
                handle.write(_PNG_HEAD)
                handle.truncate(size_mb * MB)
            for mode in ("file", "inline"):
                env = {
                    **os.environ,
                    "AIRFLOW_CONN_LUMA_DEFAULT": emulator.connection_json(),
                    "AIRFLOW_HOME": folder,
                    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                }
                completed = subprocess.run(
                    [sys.executable, __file__, "--child", mode, path],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                figures = json.loads(completed.stdout.strip().splitlines()[-1])
                rows[(mode, size_mb)] = figures
                print(
                    f"{mode:6} {size_mb:4d} MB: peak RSS {figures['peak_mb']:7.1f} MB (adds "
                    f"{figures['peak_mb'] - figures['baseline_mb']:6.1f} MB over the imports), "
                    f"{figures['seconds']:.2f} s"
                )
        uploads = emulator.stats.file_uploads
    small, large = min(args.sizes_mb), max(args.sizes_mb)
    for mode in ("file", "inline"):
        grown = rows[(mode, large)]["peak_mb"] - rows[(mode, small)]["peak_mb"]
        print(f"{mode:6}: peak RSS grows {grown:+7.1f} MB from the {small} MB to the {large} MB image")
    added = {
        mode: rows[(mode, large)]["peak_mb"] - rows[(mode, large)]["baseline_mb"]
        for mode in ("file", "inline")
    }
    print(
        f"at {large} MB the inline request adds {added['inline']:.1f} MB, the uploaded file "
        f"{added['file']:.1f} MB ({added['inline'] / max(added['file'], 0.1):.0f}x); the emulator took "
        f"{uploads} upload(s)"
    )
    emit(
        "input_upload_memory",
        [{"mode": mode, "size_mb": size, **figures} for (mode, size), figures in rows.items()],
    )


if __name__ == "__main__":
    main()
