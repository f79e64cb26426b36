"""
LumaUploadOutputsOperator throughput, as a ratio to a plain ``httpx.stream`` of the same bytes, and its
peak memory, for outputs of growing size.

The upload is what a pipeline pays after every generation: GET the generation for a fresh presigned
URL, stream the image (hashed) into a scratch file, then publish it and its metadata record to the
destination. This script measures it against the floor, a bare ``httpx.stream`` -> file of the same
URL from the same emulator, for 2, 10 and 50 MB outputs (the emulator pads its PNGs to a size; uni-1
outputs are a few MB, the larger sizes check that nothing grows with the image) and two destinations:
a local folder, and S3 on moto's server (``ThreadedMotoServer`` on 127.0.0.1, reached through an
Airflow ``aws`` connection with an ``endpoint_url``, as ``tests/conftest.py`` sets it up).

Every run is a fresh subprocess (the same child for the three methods; the emulator and moto stay in
this process), which reports the seconds of the transfer alone (imports excluded) and its peak RSS
(``VmHWM``, its own high-water mark) after the imports and after the transfer. Methods are
interleaved per repetition and the median taken; a first unmeasured upload warms the children's
bytecode cache (kept in the scratch folder through ``PYTHONPYCACHEPREFIX``, nothing is written next
to the sources). ``--quick`` does 2 and 10 MB to a local folder only (add ``--s3`` for S3 too).

The operator's time includes what a fresh task process pays once: the GET, its clients, and Airflow's
own first use of ``ObjectStoragePath`` (which imports every installed provider's filesystem module)
and of the hook-lineage collector. So the ratio is largest for small outputs; the rate of each
further MB (between the smallest and the largest size) leaves that fixed cost out.

    .venv/bin/python benchmarks/bench_upload_throughput.py [--quick] [--s3] [--sizes-mb 2 10 50]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import emit, table
from bench_upload_memory import MB, _create_completed

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_luma.testing import LumaEmulator

BUCKET = "luma-bench"
AWS_CONN_ID = "aws_bench"
METHODS = ("httpx.stream", "operator -> local", "operator -> s3")


# --- the child: one transfer in a fresh process ----------------------------------------------------


def _peak_rss_mb() -> float:
    """
    This process's own peak RSS (``VmHWM``) in MB.

    Not ``ru_maxrss``: on Linux a child's ``ru_maxrss`` keeps the high-water mark of the process it was
    spawned from (kept across ``execve``), so it would report this script's parent, which holds the
    emulator and moto, whenever that is the larger.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_httpx(url: str, path: str) -> dict[str, Any]:
    """Stream ``url`` into ``path`` with nothing but httpx."""
    import httpx

    baseline = _peak_rss_mb()
    started = time.perf_counter()
    with httpx.stream("GET", url) as response, open(path, "wb") as sink:
        response.raise_for_status()
        for chunk in response.iter_bytes():
            sink.write(chunk)
    elapsed = time.perf_counter() - started
    return {
        "baseline_mb": baseline,
        "peak_mb": _peak_rss_mb(),
        "seconds": elapsed,
        "size": os.path.getsize(path),
    }


def child_operator(generation_id: str, destination: str, conn_id: str) -> dict[str, Any]:
    """Run the upload (connections from the environment) to ``destination``."""
    from airflow_provider_luma.hooks.luma import LumaHook  # noqa: F401  (imports before the baseline)
    from airflow_provider_luma.lineage import GenerationLineage  # noqa: F401
    from airflow_provider_luma.operators.luma import LumaUploadOutputsOperator

    if destination.startswith("s3://"):
        import s3fs  # noqa: F401
        from airflow.providers.amazon.aws.fs import s3  # noqa: F401

    operator = LumaUploadOutputsOperator(
        task_id="bench",
        generation=generation_id,
        destination=destination,
        destination_conn_id=conn_id or None,
    )
    ti = SimpleNamespace(dag_id="bench", task_id="bench", run_id="bench", map_index=-1, try_number=1)
    baseline = _peak_rss_mb()
    started = time.perf_counter()
    context: Any = {"ti": ti}  # the only entry the upload reads
    manifest = operator.execute(context)
    elapsed = time.perf_counter() - started
    output = manifest["outputs"][0]
    return {
        "baseline_mb": baseline,
        "peak_mb": _peak_rss_mb(),
        "seconds": elapsed,
        "size": output["size"],
        "sha256": output["sha256"],
        "uri": output["uri"],
    }


# --- the parent ------------------------------------------------------------------------------------


class MotoS3:
    """moto's S3 server on 127.0.0.1 and an Airflow connection to it (as tests/conftest.py's s3_server)."""

    def __init__(self) -> None:
        import boto3
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        endpoint_url = f"http://{host}:{port}"
        self.connection = json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"endpoint_url": endpoint_url, "region_name": "us-east-1"},
            }
        )
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        self.client.create_bucket(Bucket=BUCKET)

    def sha256(self, key: str) -> str:
        digest = hashlib.sha256()
        for chunk in self.client.get_object(Bucket=BUCKET, Key=key)["Body"].iter_chunks(1024 * 1024):
            digest.update(chunk)
        return digest.hexdigest()

    def stop(self) -> None:
        self.server.stop()


def _output_url(emulator: LumaEmulator, generation_id: str) -> str:
    import httpx

    headers = {"Authorization": f"Bearer {emulator.api_key}"}
    response = httpx.get(f"{emulator.base_url}/generations/{generation_id}", headers=headers)
    response.raise_for_status()
    return str(response.json()["output"][0]["url"])


def _digest_of_url(url: str) -> tuple[str, int]:
    """The bytes' sha256 and size, read once in this process (also warms the emulator's image cache)."""
    import httpx

    digest, size = hashlib.sha256(), 0
    with httpx.stream("GET", url) as response:
        response.raise_for_status()
        for chunk in response.iter_bytes():
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stored:
        for chunk in iter(lambda: stored.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _run_child(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, __file__, "--child", *args], env=env, capture_output=True, text=True, check=False
    )
    if completed.returncode:
        raise RuntimeError(f"child {args[0]} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _runs(methods: list[str], repeat: int) -> Iterator[tuple[int, str]]:
    for repetition in range(repeat):  # interleaved, so a busy moment hits every method
        for method in methods:
            yield repetition, method


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 and 10 MB, local only, 2 runs each")
    parser.add_argument("--s3", action="store_true", help="with --quick: S3 on moto too")
    parser.add_argument("--sizes-mb", type=int, nargs="+")
    parser.add_argument("--repeat", type=int, help="runs per size and method (median taken)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        result = child_httpx(*rest) if kind == "httpx" else child_operator(*rest)
        print(json.dumps(result))
        return

    sizes = args.sizes_mb or ([2, 10] if args.quick else [2, 10, 50])
    repeat = args.repeat or (2 if args.quick else 3)
    methods = [m for m in METHODS if m != "operator -> s3" or args.s3 or not args.quick]

    from airflow_provider_luma.testing import LumaEmulator

    rows: list[dict[str, Any]] = []
    moto = MotoS3() if "operator -> s3" in methods else None
    try:
        with (
            LumaEmulator(queued_seconds=0, processing_seconds=0, long_edge=256) as emulator,
            tempfile.TemporaryDirectory(prefix="luma-bench-upload-") as scratch,
        ):
            env = {
                **os.environ,
                "AIRFLOW_CONN_LUMA_DEFAULT": emulator.connection_json(),
                "AIRFLOW_HOME": scratch,
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                # Bytecode cached as in a deployment, under the scratch folder (not next to the sources).
                "PYTHONPYCACHEPREFIX": os.path.join(scratch, "pycache"),
            }
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            if moto is not None:
                env[f"AIRFLOW_CONN_{AWS_CONN_ID.upper()}"] = moto.connection
            for size_mb in sizes:
                emulator.configure(output_padding_bytes=size_mb * MB)
                generation_id = _create_completed(emulator, f"benchmark output of {size_mb} MB")
                url = _output_url(emulator, generation_id)
                sha256, size = _digest_of_url(url)
                if size_mb == sizes[0]:  # unmeasured: fills the children's bytecode cache
                    _run_child(["operator", generation_id, f"file://{scratch}/warm-up", ""], env)
                    if moto is not None:
                        _run_child(["operator", generation_id, f"s3://{BUCKET}/warm-up", AWS_CONN_ID], env)
                results: dict[str, list[dict[str, Any]]] = {method: [] for method in methods}
                for _, method in _runs(methods, repeat):
                    run = uuid.uuid4().hex[:8]
                    if method == "httpx.stream":
                        path = os.path.join(scratch, f"plain-{run}.png")
                        result = _run_child(["httpx", url, path], env)
                        result["sha256"] = _file_sha256(path)
                        os.remove(path)
                    elif method == "operator -> local":
                        folder = os.path.join(scratch, f"local-{run}")
                        result = _run_child(["operator", generation_id, f"file://{folder}", ""], env)
                        stored = result["uri"].removeprefix("file://")
                        assert _file_sha256(stored) == result["sha256"]
                    else:
                        assert moto is not None
                        destination = f"s3://{BUCKET}/{run}"
                        result = _run_child(["operator", generation_id, destination, AWS_CONN_ID], env)
                        assert moto.sha256(result["uri"].removeprefix(f"s3://{BUCKET}/")) == result["sha256"]
                    assert (result["size"], result["sha256"]) == (size, sha256), (method, result, size)
                    results[method].append(result)
                plain = statistics.median(r["seconds"] for r in results["httpx.stream"])
                for method, runs in results.items():
                    seconds = statistics.median(r["seconds"] for r in runs)
                    rows.append(
                        {
                            "size_mb": size / MB,
                            "method": method,
                            "runs": len(runs),
                            "seconds_median": seconds,
                            "mb_per_s": size / MB / seconds,
                            "time_vs_httpx": seconds / plain,
                            "peak_rss_mb": max(r["peak_mb"] for r in runs),
                            "rss_after_imports_mb": statistics.median(r["baseline_mb"] for r in runs),
                            "rss_added_mb": max(r["peak_mb"] - r["baseline_mb"] for r in runs),
                        }
                    )
    finally:
        if moto is not None:
            moto.stop()

    print(
        f"\n{len(sizes)} sizes x {len(methods)} methods, {repeat} fresh subprocesses each (median time; "
        "RSS: the largest of the runs)\n"
    )
    print(
        table(
            [
                "output",
                "method",
                "time",
                "MB/s",
                "time vs httpx",
                "peak RSS",
                "after imports",
                "transfer adds",
            ],
            [
                [
                    f"{row['size_mb']:.1f} MB",
                    row["method"],
                    f"{row['seconds_median']:.3f} s",
                    f"{row['mb_per_s']:.0f}",
                    f"x{row['time_vs_httpx']:.2f}",
                    f"{row['peak_rss_mb']:.1f} MB",
                    f"{row['rss_after_imports_mb']:.1f} MB",
                    f"{row['rss_added_mb']:.1f} MB",
                ]
                for row in rows
            ],
        )
    )
    smallest, largest = min(sizes), max(sizes)
    print()
    marginal: dict[str, float | None] = {}
    for method in methods:
        by_size = {round(r["size_mb"]): r for r in rows if r["method"] == method}
        low, high = by_size[smallest], by_size[largest]
        # The fixed cost (a GET, clients, the metadata record) cancels out: what each further MB costs.
        extra = high["seconds_median"] - low["seconds_median"]
        rate = (high["size_mb"] - low["size_mb"]) / extra if extra > 0 else None
        marginal[method] = rate
        further = f"{rate:.0f} MB/s" if rate is not None else "no slower than the first (within noise)"
        print(
            f"{method}: from {low['size_mb']:.0f} to {high['size_mb']:.0f} MB the peak RSS moves "
            f"{high['peak_rss_mb'] - low['peak_rss_mb']:+.1f} MB; time vs httpx x{low['time_vs_httpx']:.2f} "
            f"-> x{high['time_vs_httpx']:.2f}; each further MB: {further}"
        )
    emit(
        "upload_throughput",
        rows,
        mode="quick" if args.quick else "full",
        sizes_mb=sizes,
        repeat=repeat,
        marginal_mb_per_s=marginal,
    )


if __name__ == "__main__":
    main()
