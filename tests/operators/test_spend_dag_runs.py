"""
The budget guard and the spend accounting in real Airflow runs (``dag.test()``) against the emulator:
a mapped run under a cap, a retry that reattaches, an abandoned submission counted against the cap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.dags.spend_budget import ABANDONED_CAP_USD, MAPPED_CAP_USD, PROMPTS
from tests.support import run_dag, xcom

pytestmark = pytest.mark.usefixtures("airflow_db", "luma_connection")

DAGS = Path(__file__).resolve().parents[1] / "dags"
UNI_1 = 0.0404


def _console(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> str:
    """What dag.test() printed: each failed task's error (to stdout, or to logging under capture)."""
    captured = capfd.readouterr()
    return captured.out + captured.err + caplog.text


def test_a_mapped_run_under_a_cap_pays_for_what_fits_and_refuses_the_rest(
    luma_emulator: Any,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    state, _, tis = run_dag(monkeypatch, DAGS / "spend_budget.py", "luma_spend_mapped_cap")

    mapped = [tis[("generate", index)] for index in range(len(PROMPTS))]
    paid = [ti for ti in mapped if ti.state == "success"]
    refused = [ti for ti in mapped if ti.state != "success"]
    fits = int(MAPPED_CAP_USD // UNI_1)
    assert len(paid) == fits and [ti.state for ti in refused] == ["failed"] * (len(PROMPTS) - fits)
    assert luma_emulator.stats.requests["POST /v1/generations"] == fits
    # Refused without spending its retries.
    assert all(ti.try_number == 1 for ti in refused)
    results = [xcom(ti) for ti in paid]
    assert all(r["estimated_cost_usd"] == UNI_1 and r["billed_this_try"] for r in results)
    assert all(r["abandoned_generations"] == [] for r in results)
    report = xcom(tis[("spend", -1)])
    assert report["estimated_cost_usd"] == pytest.approx(fits * UNI_1)
    assert report["submissions"] == fits and report["by_model"] == {"uni-1": pytest.approx(fits * UNI_1)}
    assert tis[("spend", -1)].state == "success" and state == "failed"
    console = _console(capfd, caplog)
    for ti in refused:
        assert (
            f"max_run_cost_usd={MAPPED_CAP_USD:.4f} USD would be passed by task generate[{ti.map_index}]"
            in console
        )
    assert f"submitted {fits} generation(s) estimated at {fits * UNI_1:.4f} USD" in console
    assert "Nothing was sent" in console


@pytest.mark.latest_airflow  # the earlier tries are remembered in task_state_store (Airflow 3.3)
def test_an_abandoned_submission_counts_against_the_cap(
    luma_emulator: Any,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    state, _, tis = run_dag(monkeypatch, DAGS / "spend_budget.py", "luma_spend_abandoned")

    first = xcom(tis[("first", -1)])
    assert tis[("first", -1)].try_number == 2 and first["billed_this_try"] is True
    [abandoned] = first["abandoned_generations"]
    assert abandoned["generation_id"] != first["generation_id"] and abandoned["estimated_cost_usd"] == UNI_1
    # Two paid generations ($0.0808) fit under $0.10: only the abandoned one makes a third too many.
    assert tis[("second", -1)].state == "failed" and state == "failed"
    assert luma_emulator.stats.requests["POST /v1/generations"] == 2
    assert f"max_run_cost_usd={ABANDONED_CAP_USD:.4f} USD" in _console(capfd, caplog)
    report = xcom(tis[("spend", -1)])
    assert report["estimated_cost_usd"] == pytest.approx(2 * UNI_1)
    assert report["abandoned"] == 1 and report["by_task"] == {"first": pytest.approx(2 * UNI_1)}
