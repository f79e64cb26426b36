"""
What every benchmark prints at the end: an aligned table for a person, then one JSON line for a runner.

The JSON object is always the last line of stdout: ``{"benchmark": NAME, "rows": [...], "machine":
{...}}`` (plus any extra keys a benchmark adds, such as ``mode``), so a runner assembling
``benchmarks/RESULTS.md`` can read ``stdout.splitlines()[-1]``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any


def _version(distribution: str) -> str | None:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    """The figures' context: cores, interpreter, the two libraries that matter most, the OS."""
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "airflow": _version("apache-airflow"),
        "httpx": _version("httpx"),
        "platform": platform.platform(),
    }


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """Rows as a left-aligned text table (floats as given: format them before)."""
    cells = [headers, *[[str(cell) for cell in row] for row in rows]]
    widths = [max(len(row[column]) for row in cells) for column in range(len(headers))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def emit(benchmark: str, rows: list[dict[str, Any]], **extra: Any) -> None:
    """Print the JSON line (last on stdout: call this after everything else has printed)."""
    sys.stdout.flush()
    print(json.dumps({"benchmark": benchmark, "rows": rows, "machine": machine(), **extra}), flush=True)
