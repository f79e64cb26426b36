"""Run the emulator until Ctrl-C: ``python -m airflow_provider_luma.testing [--port 8765 ...]``."""

from __future__ import annotations

import argparse
import signal
import threading
from dataclasses import fields
from typing import TYPE_CHECKING

from airflow_provider_luma.testing.server import LumaEmulator
from airflow_provider_luma.testing.state import EmulatorSettings

if TYPE_CHECKING:
    from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_luma.testing", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    for setting in fields(EmulatorSettings):
        flag = f"--{setting.name.replace('_', '-')}"
        if isinstance(setting.default, bool):
            # type=bool would read "--flag False" as True: a switch (and its --no- form) instead.
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=setting.default)
        else:
            parser.add_argument(flag, type=type(setting.default), default=setting.default)
    parser.add_argument("--api-key", default=None, help="must start with luma-api-; random by default")
    parser.add_argument("--other-api-key", default=None, help="a second client's key; random by default")
    args = parser.parse_args(argv)
    # A shell starts a background job with SIGINT ignored, and Python then never raises
    # KeyboardInterrupt: stop on SIGINT and SIGTERM whatever this process inherited.
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, signal.default_int_handler)
    emulator = LumaEmulator(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        other_api_key=args.other_api_key,
        **{setting.name: getattr(args, setting.name) for setting in fields(EmulatorSettings)},
    )
    with emulator:
        print(f"Luma emulator: {emulator.base_url}", flush=True)
        print(f"API key: {emulator.api_key}", flush=True)
        print(f"Other client's API key: {emulator.other_api_key}", flush=True)
        print(f"Control plane: {emulator.root_url}/_emulator/stats", flush=True)
        print(f"AIRFLOW_CONN_LUMA_DEFAULT='{emulator.connection_json()}'", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopping", flush=True)


if __name__ == "__main__":
    main()
