"""Print the lowest supported Airflow version: the lower bound of ``apache-airflow>=`` in pyproject.toml.

The Makefile installs exactly this version in the floor environment, so the floor has one definition.
Reads the file as text because ``tomllib`` is missing on Python 3.10, which the bootstrap may run on.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def airflow_floor(pyproject_text: str) -> str:
    """Return the version in the ``"apache-airflow>=X"`` requirement; fail loudly if there is none."""
    match = re.search(r'"apache-airflow>=([0-9][0-9A-Za-z.]*)', pyproject_text)
    if match is None:
        raise SystemExit(f"no 'apache-airflow>=' requirement found in {PYPROJECT}")
    return match.group(1)


if __name__ == "__main__":
    sys.stdout.write(airflow_floor(PYPROJECT.read_text(encoding="utf-8")) + "\n")
