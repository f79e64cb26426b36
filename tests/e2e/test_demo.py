"""
``make demo`` works: scripts/demo.py, run from a scratch copy of the repository's demo files in its
short mode, starts the real Airflow services, leaves images, records and a gallery page it reports
truthfully, and stops everything it started. Without the emulator (an API key set), it asks before
anything is paid, and a "no" starts nothing.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from airflow_provider_luma.testing.airflow_services import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

REPO = Path(__file__).resolve().parents[2]
#: The short demo takes well under a minute on 2 cores; a stuck one is stopped long before the test's timeout.
DEMO_TIMEOUT_SECONDS = 300


def _scratch_copy(tmp_path: Path) -> Path:
    """The demo's own files in a fresh folder: none of the checkout's state (outputs, homes) comes along."""
    copy = tmp_path / "repo"
    for folder in ("scripts", "example_dags"):
        shutil.copytree(REPO / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _env(**extra: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AIRFLOW_", "AIRFLOW__", "LUMA_")) and name != "AIRFLOW_HOME"
    }
    return {**env, **extra}


def _run_demo(
    copy: Path, *args: str, env: dict[str, str], stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(copy / "scripts" / "demo.py"), *args]
    with subprocess.Popen(
        command,
        cwd=copy,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as demo:
        try:
            stdout, stderr = demo.communicate(stdin, timeout=DEMO_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            # SIGTERM, not the SIGKILL subprocess.run sends: the demo stops the services it started
            # (each in its own session, out of reach of a kill of the demo alone).
            demo.terminate()
            stdout, stderr = demo.communicate(timeout=60)
            pytest.fail(f"the demo took over {DEMO_TIMEOUT_SECONDS} s:\n{stdout}\n{stderr}")
    return subprocess.CompletedProcess(command, demo.returncode, stdout, stderr)


def test_the_short_demo_runs_the_refresh_on_real_airflow_and_reports_it_truthfully(tmp_path: Path) -> None:
    copy = _scratch_copy(tmp_path)
    output = tmp_path / "demo-output"
    args = [
        "--short",
        "--port",
        str(free_port()),
        "--output",
        str(output),
        "--airflow-home",
        str(tmp_path / "home"),
    ]
    result = _run_demo(copy, *args, env=_env())
    text = result.stdout + result.stderr
    assert result.returncode == 0, text
    assert "Traceback" not in text

    images = sorted(output.rglob("*.png"))
    assert len(images) == 2, text
    for image in images:
        data = image.read_bytes()
        # Every stored image is listed with its real size and checksum, and has its record.
        assert str(image) in result.stdout
        assert f"{len(data)} bytes  sha256 {hashlib.sha256(data).hexdigest()}" in result.stdout
        record = json.loads(Path(str(image) + ".json").read_text())
        assert record["sha256"] == hashlib.sha256(data).hexdigest()
    [gallery] = output.rglob("index.html")
    assert f"Gallery page: {gallery}" in result.stdout
    page = gallery.read_text()
    for image in images:
        prompt = json.loads(Path(str(image) + ".json").read_text())["request"]["prompt"]
        assert html.escape(prompt) in page
    assert not list(output.rglob(".*partial*")), "a partial download was left behind"

    # The waits ran in the triggerer, and nothing was paid twice.
    assert re.search(
        r"Waits in the triggerer: 2 generate task instance\(s\) deferred, each resumed by its "
        r"trigger's event; "
        r"\S+airflow\.db holds [1-9]\d* TriggererJob",
        text,
    )
    counts = re.search(r"Emulator: (\d+) generation\(s\) created \((\d+) POST\)", text)
    assert counts and counts[1] == counts[2] == "2", text
    assert "Estimated cost (Luma's list prices): 0.0808 USD for 2 submission(s)" in text

    # Everything it started is gone.
    stopped = re.search(r"Stopped the Airflow services \(process groups ([\d, ]+)\)", text)
    assert stopped, text
    pids = [int(pid) for pid in stopped[1].split(", ")]
    assert len(pids) == 4
    assert not [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]


def test_with_an_api_key_nothing_is_started_or_paid_without_a_yes(tmp_path: Path) -> None:
    copy = _scratch_copy(tmp_path)
    key = "luma-demo-test-key-never-printed"
    result = _run_demo(
        copy, "--airflow-home", str(tmp_path / "home"), env=_env(LUMA_AGENTS_API_KEY=key), stdin="n\n"
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "will submit 9 generation(s) to https://agents.lumalabs.ai/v1, estimated 0.3636 USD" in result.stdout
    )
    assert "Nothing was submitted." in result.stdout
    assert "Starting Airflow" not in result.stdout and not (tmp_path / "home").exists()
    assert key not in result.stdout + result.stderr
