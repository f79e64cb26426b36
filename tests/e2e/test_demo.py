"""``make demo`` works: scripts/demo.py exits 0 and stores images it reports truthfully."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

DEMO = Path(__file__).resolve().parents[2] / "scripts" / "demo.py"


def test_demo_stores_the_images_it_reports(tmp_path: Path) -> None:
    output = tmp_path / "demo-output"
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AIRFLOW_", "AIRFLOW__")) and name != "AIRFLOW_HOME"
    }
    result = subprocess.run(
        [
            sys.executable,
            str(DEMO),
            "--output",
            str(output),
            "--airflow-home",
            str(tmp_path / "airflow-home"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr

    images = sorted(path for path in output.rglob("*") if path.suffix in (".png", ".jpg"))
    assert images, result.stdout
    for image in images:
        # Every stored image is listed with its real checksum and size.
        assert str(image) in result.stdout
        data = image.read_bytes()
        assert f"{len(data)} bytes  sha256 {hashlib.sha256(data).hexdigest()}" in result.stdout
    assert not list(output.rglob(".*partial")), "a partial download was left behind"
    counts = re.search(r"Emulator: (\d+) generation\(s\) created \((\d+) POST\)", result.stdout)
    assert counts, result.stdout
    # Each image came from a generation, and no generation was submitted twice.
    assert int(counts[1]) >= 1
    assert int(counts[1]) == int(counts[2])
