"""
What importing the provider's operators adds to a DAG file's parse, over a bare ``import airflow.sdk``.

A DAG file that uses ``LumaGenerateImageOperator`` pays, on every parse, for whatever
``airflow_provider_luma.operators.luma`` imports eagerly (the dag-processor has Airflow loaded; the
provider's modules are imported per parse). Each variant runs in a fresh interpreter (``-c``), times
its imports with ``perf_counter`` and lists the modules they loaded; the variants are interleaved and
the median taken. The children read bytecode cached under a private ``PYTHONPYCACHEPREFIX`` (as a
deployment would have ``.pyc`` files; nothing is written next to the sources), after one warm-up run;
``--from-source`` keeps the environment's setting instead (with ``PYTHONDONTWRITEBYTECODE`` every
import then compiles). The variants:

- ``sdk``: ``import airflow.sdk``;
- ``sdk + provider``: that, then ``from airflow_provider_luma.operators.luma import
  LumaGenerateImageOperator, LumaUploadOutputsOperator``;
- full mode only, ``sdk + DAG, BaseOperator`` and ``... + provider``: what any DAG file with an
  operator imports anyway (``airflow.sdk`` loads those names lazily), to separate the provider's own
  cost from the SDK's lazy imports it triggers.

It reports the added milliseconds two ways: the provider step timed inside the same process, right
after ``import airflow.sdk`` (the figure to use), and the difference of the medians of whole runs,
which also carries the run-to-run noise of the ``import airflow.sdk`` step (shown per variant); then the
modules the provider import loads that ``airflow.sdk`` did not (does it pull in httpx,
the hook, the trigger, pydantic...?), and from one ``python -X importtime`` run the provider's ten
biggest modules by cumulative time and the biggest foreign modules its import brings in.

    .venv/bin/python benchmarks/bench_import_cost.py [--quick] [--repeat N] [--from-source]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import emit, table

PROVIDER_IMPORT = (
    "from airflow_provider_luma.operators.luma import LumaGenerateImageOperator, LumaUploadOutputsOperator"
)
SDK_NAMES_IMPORT = "from airflow.sdk import DAG, BaseOperator"
#: Modules worth naming if the operators' import loads them (the operators import these lazily, or should).
WATCHED = (
    "httpx",
    "httpcore",
    "pydantic",
    "airflow_provider_luma.hooks.luma",
    "airflow_provider_luma.triggers.luma",
    "airflow_provider_luma.lineage",
    "airflow_provider_luma.testing",
    "airflow.providers.openlineage",
    "fsspec",
    "upath",
    "PIL",
    "boto3",
    "sqlalchemy",
)

#: The child: each step is timed, and the modules it loaded are listed.
CHILD = """
import json, sys, time
steps = json.loads(sys.argv[1])
result = []
for name, statement in steps:
    before = set(sys.modules)
    started = time.perf_counter()
    exec(statement, {})
    result.append({"step": name, "seconds": time.perf_counter() - started,
                   "new_modules": sorted(set(sys.modules) - before)})
print(json.dumps(result))
"""


def _variants(full: bool) -> dict[str, list[tuple[str, str]]]:
    variants = {
        "sdk": [("sdk", "import airflow.sdk")],
        "sdk + provider": [("sdk", "import airflow.sdk"), ("provider", PROVIDER_IMPORT)],
    }
    if full:
        variants["sdk + DAG, BaseOperator"] = [
            ("sdk", "import airflow.sdk"),
            ("sdk names", SDK_NAMES_IMPORT),
        ]
        variants["sdk + DAG, BaseOperator + provider"] = [
            ("sdk", "import airflow.sdk"),
            ("sdk names", SDK_NAMES_IMPORT),
            ("provider", PROVIDER_IMPORT),
        ]
    return variants


def _run_child(steps: list[tuple[str, str]], env: dict[str, str]) -> list[dict[str, Any]]:
    completed = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(steps)], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _importtime(env: dict[str, str]) -> list[tuple[str, int, int, int]]:
    """The ``-X importtime`` lines of the provider import: (name, self us, cumulative us, depth)."""
    statement = f"import airflow.sdk; {PROVIDER_IMPORT}"
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    parsed = []
    for line in completed.stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        self_us, cumulative_us, name = line.removeprefix("import time:").split("|")
        depth = (len(name) - len(name.lstrip())) // 2
        parsed.append((name.strip(), int(self_us), int(cumulative_us), depth))
    # A module is printed once its own imports are done: airflow.sdk's line closes its tree.
    start = next(index for index, entry in enumerate(parsed) if entry[0] == "airflow.sdk" and entry[3] == 0)
    return parsed[start + 1 :]


def _top_packages(modules: list[str]) -> list[str]:
    return sorted({name.split(".")[0] for name in modules})


def _module_table(modules: list[Any]) -> str:
    """``-X importtime`` rows (name, self us, cumulative us, ...) as a table."""
    return table(
        ["module", "cumulative", "self"],
        [[name, f"{cum / 1000:.1f} ms", f"{own_us / 1000:.1f} ms"] for name, own_us, cum, _ in modules],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two variants, two runs each")
    parser.add_argument("--repeat", type=int, help="runs per variant (median taken)")
    parser.add_argument(
        "--from-source",
        action="store_true",
        help="keep the environment's bytecode setting (with PYTHONDONTWRITEBYTECODE, every import compiles)",
    )
    args = parser.parse_args()
    repeat = args.repeat or (2 if args.quick else 5)
    variants = _variants(full=not args.quick)

    with tempfile.TemporaryDirectory(prefix="luma-bench-import-") as home:
        env = {**os.environ, "AIRFLOW_HOME": home, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
        if not args.from_source:
            # Bytecode as a deployment has it, cached under this run's own folder: nothing is
            # written next to the sources (the venv and the repository stay as they are).
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = os.path.join(home, "pycache")
        # Warm-up: writes airflow.cfg into the new AIRFLOW_HOME, and the bytecode cache.
        _run_child(variants["sdk + provider"], env)
        importtime = _importtime(env)
        runs: dict[str, list[list[dict[str, Any]]]] = {name: [] for name in variants}
        for repetition in range(repeat):
            # Interleaved, so a busy moment hits every variant; the order flips each time.
            order = list(variants) if repetition % 2 == 0 else list(reversed(variants))
            for name in order:
                runs[name].append(_run_child(variants[name], env))

    def step_ms(results: list[list[dict[str, Any]]], step: str) -> float:
        return 1000 * statistics.median(
            next((s["seconds"] for s in result if s["step"] == step), 0.0) for result in results
        )

    rows: list[dict[str, Any]] = []
    for name, results in runs.items():
        totals = [sum(step["seconds"] for step in result) for result in results]
        rows.append(
            {
                "variant": name,
                "runs": len(totals),
                "median_ms": statistics.median(totals) * 1000,
                "min_ms": min(totals) * 1000,
                "max_ms": max(totals) * 1000,
                "sdk_step_median_ms": step_ms(results, "sdk"),
                "provider_step_median_ms": step_ms(results, "provider"),
            }
        )
    by_name = {row["variant"]: row for row in rows}
    added = by_name["sdk + provider"]["median_ms"] - by_name["sdk"]["median_ms"]
    ratio = by_name["sdk + provider"]["median_ms"] / by_name["sdk"]["median_ms"]
    provider_ms = by_name["sdk + provider"]["provider_step_median_ms"]

    last = runs["sdk + provider"][-1]
    sdk_modules = next(s["new_modules"] for s in last if s["step"] == "sdk")
    provider_modules = next(s["new_modules"] for s in last if s["step"] == "provider")
    own = [m for m in provider_modules if m.startswith("airflow_provider_luma")]
    airflow_modules = [m for m in provider_modules if m.split(".")[0] == "airflow"]
    foreign = [m for m in provider_modules if m.split(".")[0] not in ("airflow", "airflow_provider_luma")]
    watched = {
        module: (
            "by the provider"
            if any(m == module or m.startswith(module + ".") for m in provider_modules)
            else "already by airflow.sdk"
            if any(m == module or m.startswith(module + ".") for m in sdk_modules)
            else "no"
        )
        for module in WATCHED
    }
    beyond_dag_names: list[str] | None = None
    if "sdk + DAG, BaseOperator + provider" in runs:
        result = runs["sdk + DAG, BaseOperator + provider"][-1]
        beyond_dag_names = next(s["new_modules"] for s in result if s["step"] == "provider")

    own_top = sorted((e for e in importtime if e[0].startswith("airflow_provider_luma")), key=lambda e: -e[2])
    foreign_top = sorted(
        (e for e in importtime if not e[0].startswith("airflow_provider_luma")), key=lambda e: -e[2]
    )

    cache = "compiled from source" if args.from_source else "bytecode cached (a private PYTHONPYCACHEPREFIX)"
    print(
        f"Fresh interpreters, {repeat} runs per variant (interleaved), {cache}; medians of the in-process "
        "import time:"
    )
    print(
        table(
            ["variant", "runs", "median", "min", "max", "'import airflow.sdk' step", "provider step"],
            [
                [
                    row["variant"],
                    row["runs"],
                    f"{row['median_ms']:.0f} ms",
                    f"{row['min_ms']:.0f} ms",
                    f"{row['max_ms']:.0f} ms",
                    f"{row['sdk_step_median_ms']:.0f} ms",
                    f"{row['provider_step_median_ms']:.0f} ms" if row["provider_step_median_ms"] else "-",
                ]
                for row in rows
            ],
        )
    )
    sdk_gap = by_name["sdk + provider"]["sdk_step_median_ms"] - by_name["sdk"]["sdk_step_median_ms"]
    print(
        f"\nThe operators' import, timed inside the same process after airflow.sdk's: {provider_ms:.0f} ms "
        f"({provider_ms / by_name['sdk']['median_ms']:.1%} of a bare airflow.sdk import).\n"
        f"Difference of the medians of whole runs: {added:+.0f} ms (x{ratio:.3f}); the identical "
        f"'import airflow.sdk' step alone differs by {sdk_gap:+.0f} ms between the two variants, which is "
        "this machine's run-to-run noise."
    )
    if "sdk + DAG, BaseOperator + provider" in by_name:
        base = by_name["sdk + DAG, BaseOperator"]["median_ms"]
        over_names = by_name["sdk + DAG, BaseOperator + provider"]
        print(
            f"Over a DAG file that already imports DAG and BaseOperator: "
            f"{over_names['median_ms'] - base:+.0f} ms "
            f"(provider step {over_names['provider_step_median_ms']:.0f} ms)."
        )
    print(
        f"\nModules the provider import loads that airflow.sdk did not: {len(provider_modules)} "
        f"({len(own)} of the provider, {len(airflow_modules)} of airflow, {len(foreign)} others)"
    )
    print(f"  others, by top-level package: {', '.join(_top_packages(foreign)) or '-'}")
    print(f"  of the provider (airflow_provider_luma.*): {', '.join(m.partition('.')[2] or m for m in own)}")
    if beyond_dag_names is not None:
        others = _top_packages([m for m in beyond_dag_names if not m.startswith("airflow")])
        print(
            f"  beyond a DAG file's own 'from airflow.sdk import DAG, BaseOperator': {len(beyond_dag_names)} "
            f"modules; others: {', '.join(others) or '-'}"
        )
    print(table(["watched module", "loaded"], [[module, state] for module, state in watched.items()]))
    print("\n-X importtime, the provider import only: the provider's 10 biggest modules (cumulative)")
    print(_module_table(own_top[:10]))
    print("\n... and the 10 biggest other modules it brought in (cumulative; nested ones overlap)")
    print(_module_table(foreign_top[:10]))
    emit(
        "import_cost",
        rows,
        mode="quick" if args.quick else "full",
        bytecode="from source" if args.from_source else "cached",
        provider_step_ms=provider_ms,
        added_ms=added,
        ratio=ratio,
        provider_new_modules=provider_modules,
        watched=watched,
        importtime_provider_top=[
            {"module": name, "self_us": own_us, "cumulative_us": cum} for name, own_us, cum, _ in own_top[:10]
        ],
        importtime_foreign_top=[
            {"module": name, "self_us": own_us, "cumulative_us": cum}
            for name, own_us, cum, _ in foreign_top[:10]
        ],
    )


if __name__ == "__main__":
    main()
