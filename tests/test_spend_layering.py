"""
Spend of a layering job, which Luma publishes no price for: kept as unpriced, never summed as a
guess, and refused under a run's cap (the cap could not be kept).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from airflow_provider_luma._submission import SubmissionLedger
from airflow_provider_luma.exceptions import LumaRunBudgetExceededError
from airflow_provider_luma.models import GenerationRequest
from airflow_provider_luma.spend import (
    RESERVED,
    SUBMITTED,
    LumaRunBudgetUnpricedError,
    RunBudget,
    SpendEntry,
    TaskSpend,
    spend_report,
)
from tests.fakes import FakeHook, FakeTaskStateStore, make_generation

log = logging.getLogger(__name__)
UNI_1 = 0.0404
LAYERS = SpendEntry("layers-1", "gen-layers", "uni-1", None, SUBMITTED, 1.0, type="layering")


def _priced(request_id: str, status: str = SUBMITTED) -> SpendEntry:
    return SpendEntry(request_id, f"gen-{request_id}", "uni-1", UNI_1, status, 0.0, type="image")


def _refuse_reads() -> list[TaskSpend]:
    raise AssertionError("an unpriced request needs no look at the run's spend to be refused")


# ------------------------------------------------------------------------------------- entries


def test_an_unpriced_entry_is_published_and_read_back_as_unpriced() -> None:
    published = LAYERS.to_json()
    assert published["estimated_cost_usd"] is None and published["type"] == "layering"
    assert SpendEntry.from_json(published) == LAYERS
    assert not LAYERS.priced and _priced("a").priced


@pytest.mark.parametrize(
    "value",
    [
        {"request_id": "x", "status": SUBMITTED},  # no cost at all: not an entry, not "unpriced"
        {"request_id": "x", "estimated_cost_usd": "0.04"},
        {"request_id": "x", "estimated_cost_usd": True},
        "x",
    ],
)
def test_what_is_not_an_entry_is_dropped(value: Any) -> None:
    assert SpendEntry.from_json(value) is None


def test_an_entry_published_before_the_type_was_kept_reads_with_no_type() -> None:
    older = {k: v for k, v in _priced("a").to_json().items() if k != "type"}
    assert SpendEntry.from_json(older) == SpendEntry("a", "gen-a", "uni-1", UNI_1, SUBMITTED, 0.0)


# -------------------------------------------------------------------------------------- report


def test_the_report_counts_unpriced_submissions_apart_and_says_the_sums_leave_them_out() -> None:
    spends = [
        TaskSpend("hero", -1, (_priced("1"),)),
        TaskSpend("layers", -1, (LAYERS,)),
        TaskSpend("mixed", 0, (_priced("2"), SpendEntry("3", None, "uni-1", None, RESERVED))),
    ]
    report = spend_report(spends)
    assert report["estimated_cost_usd"] == pytest.approx(2 * UNI_1)
    assert report["submissions"] == 4 and report["unpriced"] == 2
    assert report["by_task"] == {"hero": pytest.approx(UNI_1), "mixed": pytest.approx(UNI_1)}
    assert report["by_model"] == {"uni-1": pytest.approx(2 * UNI_1)}
    assert report["unpriced_by_task"] == {"layers": 1, "mixed": 1}
    # The entry without a type (published before types were kept) is named as what it is.
    assert report["note"] == (
        "2 submission(s) have no published price (this request, type 'layering'): estimated_cost_usd, "
        "by_task and by_model leave them out, so the run cost more than they say"
    )


# ------------------------------------------------------------------------------------- the cap


@pytest.mark.parametrize("cap", [0.0, 1000.0])
def test_an_unpriced_request_under_a_cap_is_refused_whatever_the_cap(cap: float) -> None:
    budget = RunBudget(cap, _refuse_reads, task_label="split[2]", log=log, sleep=lambda _: None)
    mine = SpendEntry("mine", None, "uni-1", None, RESERVED, 1.0, type="layering")

    with pytest.raises(LumaRunBudgetExceededError) as refused:
        budget.admit(mine, withdraw=lambda: None, reserve=lambda: None)

    assert isinstance(refused.value, LumaRunBudgetUnpricedError)
    message = str(refused.value)
    assert "Luma publishes no price for type 'layering'" in message
    assert "give this task max_run_cost_usd='none'" in message
    assert "split[2]" in message and "Nothing was sent" in message
    assert refused.value.retryable is False and refused.value.cap_usd == cap


def test_other_tasks_unpriced_submissions_add_nothing_to_a_capped_tasks_sum(
    caplog: pytest.LogCaptureFixture,
) -> None:
    spends = [TaskSpend("layers", -1, (LAYERS,)), TaskSpend("hero", -1, (_priced("1"),))]
    budget = RunBudget(2 * UNI_1, lambda: spends, task_label="social", log=log, sleep=lambda _: None)

    with caplog.at_level(logging.WARNING):
        budget.admit(_priced("mine", RESERVED), withdraw=lambda: None, reserve=lambda: None)

    [warning] = [record.getMessage() for record in caplog.records]
    assert "1 Luma submission(s) with no published price" in warning
    assert "counts only the priced ones" in warning


# Through the submission record, as the generate task runs it: the record turns its request's price
# into the spend entry it reserves, so a missing price must stay missing there (a 0.0 would be admitted).


def _layering_submission(
    fake_hook: FakeHook, budget: RunBudget | None, published: list[list[SpendEntry]] | None = None
) -> list[list[SpendEntry]]:
    published = [] if published is None else published
    ledger = SubmissionLedger(FakeTaskStateStore(), log, try_number=1, publish=published.append)
    request = GenerationRequest.build(type="layering", source="https://example.com/poster.png")
    fake_hook.create_result = make_generation("queued", type="layering")
    ledger.submit(fake_hook, request, request.fingerprint(), "req-1", budget=budget)
    return published


def test_a_layering_submission_under_a_cap_sends_nothing(fake_hook: FakeHook) -> None:
    budget = RunBudget(1000.0, lambda: [], task_label="split", log=log, sleep=lambda _: None)
    published: list[list[SpendEntry]] = []
    with pytest.raises(LumaRunBudgetUnpricedError):
        _layering_submission(fake_hook, budget, published)
    assert fake_hook.created == []
    # Refused before anything was reserved: the run never saw it, even for a moment.
    assert published == []


def test_a_layering_submission_without_a_cap_is_published_as_unpriced(fake_hook: FakeHook) -> None:
    published = _layering_submission(fake_hook, None)
    assert len(fake_hook.created) == 1
    [entry] = published[-1]
    assert (entry.status, entry.estimated_cost_usd, entry.type) == (SUBMITTED, None, "layering")


def test_a_task_opts_out_of_the_deployments_cap_with_none(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_luma.operators._task_context import run_cap

    monkeypatch.setenv("AIRFLOW__LUMA__MAX_RUN_COST_USD", "2.5")

    assert run_cap(None) == 2.5
    assert run_cap("none") is None and run_cap(" None ") is None
    assert run_cap(1) == 1.0
    monkeypatch.setenv("AIRFLOW__LUMA__MAX_RUN_COST_USD", "none")
    assert run_cap(None) is None
