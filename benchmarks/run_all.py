"""
Run every benchmark and write ``benchmarks/RESULTS.md``: the tables, the machine, the commands.

    .venv/bin/python benchmarks/run_all.py            # the long runs (~20 min on 2 cores)
    .venv/bin/python benchmarks/run_all.py --quick    # a smoke run of each (what CI runs)
    .venv/bin/python benchmarks/run_all.py --only worker,upload   # rerun those sections in place

The transport comparison needs the ``bench`` extra (``httpx-aiohttp``); without it that row reports
the missing module. Nothing else may run on the machine meanwhile: the triggerer rows pin the server
and the client to a core each.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_SCALE = "bench_triggerer_scale.py"
_SCALE_TIMING = ["--warmup", "5", "--window", "15", "--startup-limit", "30"]

#: (title, script, arguments for the long run); ``--quick`` replaces the arguments of a quick run.
SECTIONS: list[tuple[str, str, list[str]]] = [
    (
        "Triggerer scale, steady state: our trigger, the aiohttp floor, a client per poll",
        _SCALE,
        [
            "--variants",
            "ours,floor,naive",
            "--n",
            "100,500,1000,2000,5000",
            "--modes",
            "steady",
            *_SCALE_TIMING,
        ],
    ),
    (
        "Triggerer start-up: 2000 waits long overdue at once (a triggerer restart)",
        _SCALE,
        ["--variants", "ours,floor", "--n", "2000", "--modes", "startup", *_SCALE_TIMING],
    ),
    (
        "The async transports compared (one shared client each, bare GET + JSON)",
        _SCALE,
        [
            "--variants",
            "httpx,httpx2,httpx-aiohttp,floor",
            "--n",
            "1000,2000",
            "--modes",
            "steady",
            "--warmup",
            "5",
            "--window",
            "10",
            "--startup-limit",
            "20",
        ],
    ),
    (
        "Full-collection pauses: the same rows after gc.freeze() of the imported triggerer heap",
        _SCALE,
        ["--variants", "ours,floor", "--n", "1000,2000", "--modes", "steady", "--gc-freeze", *_SCALE_TIMING],
    ),
    (
        "Where a poll's CPU goes: the steady window under cProfile, by layer (N=1000)",
        _SCALE,
        ["--variants", "ours,floor", "--n", "1000", "--modes", "steady", "--profile", *_SCALE_TIMING],
    ),
    ("Worker slot-seconds per generation: deferrable vs polling on the worker", "bench_worker_slots.py", []),
    ("Upload throughput and peak RSS of LumaUploadOutputsOperator", "bench_upload_throughput.py", ["--s3"]),
    (
        "Sending a storage input: an uploaded file vs inline base64 (peak RSS)",
        "bench_input_upload_memory.py",
        [],
    ),
    ("Import cost of the operators in a DAG file", "bench_import_cost.py", []),
    ("GETs per completed generation", "bench_gets_per_generation.py", []),
]


def run(script: str, arguments: list[str]) -> tuple[str, dict[str, object] | None]:
    """The script's printed report (without its JSON line) and the JSON line."""
    done = subprocess.run(
        [sys.executable, str(_HERE / script), *arguments],
        cwd=_HERE.parent,
        capture_output=True,
        text=True,
    )
    lines = done.stdout.rstrip().splitlines()
    report: dict[str, object] | None = None
    if lines and lines[-1].startswith("{"):
        report = json.loads(lines.pop())
    if done.returncode:
        lines.append(f"(exit {done.returncode}) " + " | ".join(done.stderr.strip().splitlines()[-3:]))
    return "\n".join(lines), report


def _sections_of(results: str) -> dict[str, str]:
    """An earlier RESULTS.md's sections by title, in order (each block starts at its heading)."""
    blocks = results.split("\n## ")[1:]
    return {block.split("\n", 1)[0]: "## " + block.rstrip() + "\n" for block in blocks}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", type=Path, default=_HERE / "RESULTS.md")
    parser.add_argument(
        "--only", help="comma-separated words of section titles: rerun those, keep the rest of --output"
    )
    args = parser.parse_args()
    quick = SECTIONS[:1] + [section for section in SECTIONS if section[1] != _SCALE]
    sections = quick if args.quick else SECTIONS
    if args.only:
        words = [word.strip().lower() for word in args.only.split(",")]
        sections = [section for section in SECTIONS if any(word in section[0].lower() for word in words)]
        kept = _sections_of(args.output.read_text())
    command = "benchmarks/run_all.py" + (" --quick" if args.quick else "")
    parts = [
        "# Benchmark results",
        "",
        f"Written by `.venv/bin/python {command}` on {datetime.date.today().isoformat()}. "
        "Figures are from one sitting on a shared 2-core machine: compare rows of the same table.",
        "",
    ]
    failed = False
    machine: object = None
    for title, script, arguments in sections:
        print(f"== {title}", flush=True)
        text, report = run(script, ["--quick"] if args.quick else arguments)
        failed |= report is None
        machine = machine or (report or {}).get("machine")
        shown = " ".join(["benchmarks/" + script, *(["--quick"] if args.quick else arguments)])
        body = text if script == _SCALE else f"```\n{text}\n```"
        block = "\n".join([f"## {title}", "", f"`.venv/bin/python {shown}`", "", body, ""])
        if args.only:
            kept[title] = block
        parts.append(block)
        print(text, flush=True)
    if args.only:
        head, *_ = args.output.read_text().split("\n## ", 1)
        rerun = ", ".join(f'"{title}"' for title, _, _ in sections)
        note = f"Rerun on {datetime.date.today().isoformat()}, with the code of that day: {rerun}.\n"
        args.output.write_text("\n".join([head.rstrip() + "\n\n" + note, *kept.values()]))
    else:
        parts.insert(4, f"Machine: `{json.dumps(machine)}`\n")
        args.output.write_text("\n".join(parts))
    print(f"wrote {args.output}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
