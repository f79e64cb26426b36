"""
A layering job in real Airflow runs (``dag.test()``) against the emulator: a storage image split into
layers, each stored under its label as an RGBA PNG; and the same job refused under a cost cap.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from PIL import Image

from tests.support import run_dag, xcom

if TYPE_CHECKING:
    from airflow_provider_luma.testing import LumaEmulator

pytestmark = pytest.mark.usefixtures("airflow_db", "luma_connection")

DAGS = Path(__file__).resolve().parents[1] / "dags"


@pytest.fixture
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    outputs.mkdir()
    buffer = io.BytesIO()
    Image.new("RGB", (60, 40), "navy").save(buffer, format="PNG")
    (inputs / "poster.png").write_bytes(buffer.getvalue())
    monkeypatch.setenv("LUMA_TEST_INPUTS", f"file://{inputs}")
    monkeypatch.setenv("LUMA_TEST_OUTPUTS", f"file://{outputs}")
    return outputs


def test_a_layering_job_stores_every_layer_under_its_label(
    luma_emulator: LumaEmulator, monkeypatch: pytest.MonkeyPatch, folders: Path
) -> None:
    state, _, tis = run_dag(monkeypatch, DAGS / "layering.py", "luma_layering")

    assert state == "success"
    split = xcom(tis[("split", -1)])
    assert split["type"] == "layering" and split["estimated_cost_usd"] is None
    assert split["request"]["layering"] == {"resolution": "1k"}
    layers = split["layers"]
    assert [layer["index"] for layer in layers] == list(range(split["output_count"]))
    assert layers[-1]["alpha_hint"] == "none"  # the last layer is the background
    stored = sorted((folders / split["generation_id"]).glob("*.png"))
    assert len(stored) == split["output_count"] >= 2
    for path, layer in zip(stored, layers, strict=True):
        assert layer["label"].split()[0].lower() in path.name.lower()
        with Image.open(path) as image:
            assert image.mode == "RGBA"
    report = xcom(tis[("spend", -1)])
    assert report["submissions"] == 1 and report["unpriced"] == 1 and report["estimated_cost_usd"] == 0
    assert "type 'layering'" in report["note"]


def test_a_layering_job_under_a_cost_cap_is_refused_unsent(
    luma_emulator: LumaEmulator,
    monkeypatch: pytest.MonkeyPatch,
    folders: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    state, _, tis = run_dag(monkeypatch, DAGS / "layering.py", "luma_layering_capped")

    assert state == "failed" and tis[("split", -1)].try_number == 1
    assert luma_emulator.stats.requests.get("POST /v1/generations", 0) == 0
    captured = capfd.readouterr()
    assert "no price for type 'layering'" in captured.out + captured.err + caplog.text


def test_under_a_deployments_cap_a_layering_task_opts_out_with_none(
    luma_emulator: LumaEmulator, monkeypatch: pytest.MonkeyPatch, folders: Path
) -> None:
    monkeypatch.setenv("AIRFLOW__LUMA__MAX_RUN_COST_USD", "1.0")

    state, _, tis = run_dag(monkeypatch, DAGS / "layering.py", "luma_layering_opted_out")

    assert state == "success"
    assert xcom(tis[("split", -1)])["output_count"] >= 2
