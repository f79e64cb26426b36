"""
Peak Python memory of ``LumaHook.download_output`` for growing output sizes (it should stay flat).

Runs the emulator in-process (its streamed chunks count too, so the figure is an upper bound) and
downloads one output padded to each size into a sink that keeps nothing. Prints size, peak traced
allocation during the download, and throughput.

    .venv/bin/python benchmarks/hook_download_memory.py [MiB ...]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import tracemalloc

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="luma-bench-"))

from airflow_provider_luma.hooks.luma import LumaHook
from airflow_provider_luma.models import GenerationRequest
from airflow_provider_luma.testing import LumaEmulator


class Sink:
    """A destination that counts bytes and keeps none."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, chunk: bytes) -> int:
        self.size += len(chunk)
        return len(chunk)


def measure(mebibytes: int) -> tuple[int, int, float]:
    with LumaEmulator(
        queued_seconds=0, processing_seconds=0, long_edge=64, output_padding_bytes=mebibytes << 20
    ) as emulator:
        os.environ["AIRFLOW_CONN_LUMA_DEFAULT"] = emulator.connection_json()
        with LumaHook() as hook:
            generation = hook.create_generation(
                GenerationRequest.build(prompt="benchmark", output_format="png")
            )
            generation_id = generation.id
            deadline = time.monotonic() + 10
            while not hook.get_generation(generation_id).is_terminal:
                if time.monotonic() > deadline:
                    raise TimeoutError("the emulator did not complete the generation")
                time.sleep(0.02)
            sink = Sink()
            tracemalloc.start()
            started = time.perf_counter()
            result = hook.download_output(generation_id, sink)  # type: ignore[arg-type]
            elapsed = time.perf_counter() - started
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
    assert result.size == sink.size
    return result.size, peak, elapsed


def main() -> None:
    sizes = [int(arg) for arg in sys.argv[1:]] or [1, 16, 128]
    measure(0)  # warm-up: first-use imports and caches are not the download's cost
    print(f"{'output MiB':>10} {'peak traced KiB':>16} {'MiB/s':>8}")
    for mebibytes in sizes:
        size, peak, elapsed = measure(mebibytes)
        print(f"{size / 2**20:>10.1f} {peak / 1024:>16.0f} {size / 2**20 / elapsed:>8.0f}")


if __name__ == "__main__":
    main()
