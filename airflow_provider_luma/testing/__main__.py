"""Run the emulator until Ctrl-C: ``python -m airflow_provider_luma.testing [--port 8765 ...]``."""

from __future__ import annotations

import argparse
import threading
from typing import TYPE_CHECKING

from airflow_provider_luma.testing.server import LumaEmulator

if TYPE_CHECKING:
    from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_luma.testing", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--queued-seconds", type=float, default=1.0)
    parser.add_argument("--processing-seconds", type=float, default=3.0)
    parser.add_argument("--long-edge", type=int, default=2048)
    parser.add_argument("--rpm-limit", type=int, default=30)
    parser.add_argument("--concurrency-limit", type=int, default=10)
    parser.add_argument("--url-ttl-seconds", type=int, default=3600)
    parser.add_argument("--output-padding-bytes", type=int, default=0)
    parser.add_argument("--api-key", default=None, help="must start with luma-api-; random by default")
    args = parser.parse_args(argv)
    emulator = LumaEmulator(
        host=args.host,
        port=args.port,
        queued_seconds=args.queued_seconds,
        processing_seconds=args.processing_seconds,
        long_edge=args.long_edge,
        rpm_limit=args.rpm_limit,
        concurrency_limit=args.concurrency_limit,
        url_ttl_seconds=args.url_ttl_seconds,
        output_padding_bytes=args.output_padding_bytes,
        api_key=args.api_key,
    )
    with emulator:
        print(f"Luma emulator: {emulator.base_url}", flush=True)
        print(f"API key: {emulator.api_key}", flush=True)
        print(f"Control plane: {emulator.root_url}/_emulator/stats", flush=True)
        print(f"AIRFLOW_CONN_LUMA_DEFAULT='{emulator.connection_json()}'", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopping", flush=True)


if __name__ == "__main__":
    main()
