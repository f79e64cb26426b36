"""
The triggerer-scale harness still runs our trigger (a benchmark that no longer measures the product
would rot silently): a short run of our trigger and the floor, checked for sane figures, not speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.benchmark, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parent.parent


def test_the_triggerer_scale_harness_runs_our_trigger_to_its_full_rate() -> None:
    done = subprocess.run(
        [sys.executable, "benchmarks/bench_triggerer_scale.py", "--variants", "ours,floor", "--n", "50",
         "--modes", "steady", "--warmup", "1", "--window", "3", "--startup-limit", "60"],
        cwd=ROOT, capture_output=True, text=True, timeout=220,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {row["variant"]: row for row in json.loads(done.stdout.splitlines()[-1])["rows"]}
    assert set(rows) == {"ours", "floor"}
    for row in rows.values():
        # Every poller is alive and polled: the harness measured real polls, not errors.
        assert "error" not in row and row["alive"] == 50 and row["full_rate_after_s"] is not None
        assert row["achieved_per_s"] > 0 and row["ms_per_poll"] > 0
