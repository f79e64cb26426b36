"""
How many Luma waits one triggerer holds: our trigger beside the cheapest poll Python can make.

Each measurement runs the server (``benchmarks/scale/server.py``) pinned to CPU 1 and one client
process (``benchmarks/scale/client.py``, which imports Airflow's triggerer) pinned to CPU 0, so the
client's CPU is what is measured; every poller polls its own generation every 2 s. For each N it
runs our ``LumaGenerationTrigger``, the floor (one shared aiohttp session, bare GET + JSON) and, at
small N, a trigger that builds a client for every poll, in the steady state and at start-up (all N
due at once, as after a triggerer restart).

    .venv/bin/python benchmarks/bench_triggerer_scale.py                 # the full table (~25 min)
    .venv/bin/python benchmarks/bench_triggerer_scale.py --quick         # N=200, seconds-long windows
    .venv/bin/python benchmarks/bench_triggerer_scale.py --variants httpx,httpx2,httpx-aiohttp,floor --n 1000

The machine is shared and noisy: compare rows from the same run, and rerun a row near a limit.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(_ROOT / "benchmarks"))

from _report import emit  # noqa: E402

#: Client-per-poll pollers collapse early; beyond this N they only measure a collapse.
_NAIVE_MAX_N = 100
_COLUMNS = (
    ("variant", "variant"),
    ("n", "N"),
    ("mode", "mode"),
    ("rate_pct", "rate held %"),
    ("cores", "cores"),
    ("ms_per_poll", "CPU ms/poll"),
    ("lag_p99_ms", "lag p99 ms"),
    ("lag_max_ms", "lag max ms"),
    ("gc_max_ms", "GC max ms"),
    ("full_rate_after_s", "full rate after s"),
    ("startup_lag_max_ms", "start-up block max ms"),
    ("rss_mb", "RSS MB"),
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pinned(cpu: int) -> Any:
    def pin() -> None:
        if len(os.sched_getaffinity(0)) > 1:
            os.sched_setaffinity(0, {cpu})
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))

    return pin


def _certificate(folder: Path) -> tuple[Path, Path, Path]:
    """A throw-away certificate for 127.0.0.1 and a CA bundle that trusts it (via SSL_CERT_FILE)."""
    cert, key, bundle = folder / "cert.pem", folder / "key.pem", folder / "bundle.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    import certifi

    bundle.write_bytes(Path(certifi.where()).read_bytes() + cert.read_bytes())
    return cert, key, bundle


class Server:
    """The stand-in API on its own core, stopped by PID."""

    def __init__(self, tls: tuple[Path, Path] | None) -> None:
        self.port = _free_port()
        extra = [str(path) for path in tls] if tls else []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.scale.server", str(self.port), *extra],
            cwd=_ROOT,
            preexec_fn=_pinned(1),
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("the benchmark server did not start")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def measure(variant: str, n: int, mode: str, args: argparse.Namespace, tls: Any) -> dict[str, Any]:
    server = Server(tls[:2] if tls else None)
    env = dict(os.environ, PYTHONPATH=str(_ROOT))
    if tls:
        env["SSL_CERT_FILE"] = str(tls[2])
    command = [
        sys.executable, "-m", "benchmarks.scale.client", variant, str(n), "--port", str(server.port),
        "--mode", mode, "--warmup", str(args.warmup), "--window", str(args.window),
        "--startup-limit", str(args.startup_limit),
    ] + (["--tls"] if tls else []) + (["--gc-freeze"] if args.gc_freeze else [])  # fmt: skip
    profile = Path(tempfile.mkdtemp(prefix="luma-scale-profile-")) / "window.pstats" if args.profile else None
    if profile is not None:
        command += ["--profile", str(profile)]
    try:
        done = subprocess.run(
            command, cwd=_ROOT, env=env, preexec_fn=_pinned(0), capture_output=True, text=True,
            timeout=args.startup_limit + args.warmup + args.window + 120,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"variant": variant, "n": n, "mode": mode, "error": "did not finish (event loop saturated)"}
    finally:
        server.stop()
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        tail = "\n".join(done.stderr.splitlines()[-5:])
        return {"variant": variant, "n": n, "mode": mode, "error": f"exit {done.returncode}: {tail}"}
    result: dict[str, Any] = json.loads(lines[-1])
    if profile is not None and mode == "steady":
        polls = result["achieved_per_s"] * args.window
        result["profile"] = {layer: round(seconds * 1000 / polls, 3) for layer, seconds in layers(profile)}
        shutil.rmtree(profile.parent, ignore_errors=True)
    return result


#: Where a function's own time is counted, by the file it is defined in (the first match wins).
_LAYERS = (
    ("provider", ("airflow_provider_luma",)),
    ("httpx", ("/httpx/", "/httpcore/", "/h11/", "/anyio/", "/sniffio/")),
    ("aiohttp", ("/aiohttp/", "/yarl/", "/multidict/", "/propcache/", "/aiohappyeyeballs/", "/frozenlist/")),
    ("asyncio", ("/asyncio/", "/selectors.py", "/contextvars", "/ssl.py")),
    ("benchmark", ("/benchmarks/",)),
)


def layers(path: Path) -> list[tuple[str, float]]:
    """The profiled window's CPU seconds by layer (the event loop's idle wait in epoll left out)."""
    import pstats

    totals: dict[str, float] = {}
    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    for (filename, _line, function), (_calls, _primitive, own, _cumulative, _callers) in stats.items():
        if function == "<method 'poll' of 'select.epoll' objects>":
            continue
        layer = next((name for name, marks in _LAYERS if any(mark in filename for mark in marks)), "other")
        totals[layer] = totals.get(layer, 0.0) + own
    return sorted(totals.items(), key=lambda item: -item[1])


def markdown(rows: list[dict[str, Any]]) -> str:
    shown = [(key, title) for key, title in _COLUMNS if any(key in row for row in rows)]
    lines = ["| " + " | ".join(title for _, title in shown) + " |", "|" + "---|" * len(shown)]
    for row in rows:
        cells = [
            row.get("error", "") if key == "rate_pct" and "error" in row else row.get(key) for key, _ in shown
        ]
        lines.append("| " + " | ".join("-" if cell is None else str(cell) for cell in cells) + " |")
    return "\n".join(lines)


def ratios(rows: list[dict[str, Any]]) -> list[str]:
    """Ours against the floor and the client-per-poll trigger, per N, from this run's rows."""

    def find(variant: str, n: int) -> dict[str, Any] | None:
        matching = (r for r in rows if (r["variant"], r["n"], r["mode"]) == (variant, n, "steady"))
        return next((r for r in matching if "ms_per_poll" in r), None)

    lines = []
    naive = next((r for r in rows if r["variant"] == "naive" and "ms_per_poll" in r), None)
    for n in sorted({r["n"] for r in rows}):
        ours, floor = find("ours", n), find("floor", n)
        if ours and floor:
            line = f"N={n}: ours {ours['ms_per_poll'] / floor['ms_per_poll']:.2f}x the floor's CPU per poll"
            line += f" (lag p99 {ours['lag_p99_ms']} ms vs {floor['lag_p99_ms']} ms)"
            if naive:
                below = naive["ms_per_poll"] / ours["ms_per_poll"]
                line += f", {below:.0f}x below client-per-poll (N={naive['n']})"
            lines.append(line)
    return lines


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="N=200, short windows (a smoke run)")
    parser.add_argument("--variants", default="ours,floor,naive")
    parser.add_argument("--n", default="100,500,1000,2000,5000")
    parser.add_argument("--modes", default="steady,startup")
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--startup-limit", type=float, default=90.0)
    parser.add_argument("--tls", action="store_true", help="HTTPS with a throw-away certificate")
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() the imported heap first")
    parser.add_argument("--profile", action="store_true", help="cProfile each steady window, by layer")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    if args.quick:
        args.n, args.warmup, args.window, args.startup_limit = "200", 2.0, 4.0, 30.0
    return args


def main() -> None:
    args = _arguments()
    tls = None
    if args.tls:
        folder = Path(tempfile.mkdtemp(prefix="luma-scale-tls-"))
        tls = _certificate(folder)
    rows = []
    plan = [
        (variant, int(n), mode)
        for n in args.n.split(",")
        for variant in args.variants.split(",")
        for mode in args.modes.split(",")
        if not (variant == "naive" and int(n) > _NAIVE_MAX_N and not args.quick)
    ]
    for variant, n, mode in plan:
        row = measure(variant, n, mode, args, tls)
        print(json.dumps(row), file=sys.stderr, flush=True)
        rows.append(row)
    if tls:
        shutil.rmtree(tls[0].parent, ignore_errors=True)
    print(markdown(rows))
    for line in ratios(rows):
        print(line)
    for row in rows:
        if "profile" in row:
            shares = ", ".join(f"{layer} {ms} ms" for layer, ms in row["profile"].items())
            print(f"{row['variant']} N={row['n']}, CPU per poll by layer under cProfile: {shares}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    emit("triggerer_scale", rows)


if __name__ == "__main__":
    main()
