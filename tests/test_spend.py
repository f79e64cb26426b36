"""
The run's spend and its budget guard, without Airflow: an in-memory "XCom" shared by task instances
that reserve, check and submit in interleavings chosen by the test.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import pytest

from airflow_provider_luma import _metrics
from airflow_provider_luma.exceptions import LumaRunBudgetExceededError
from airflow_provider_luma.spend import (
    ABANDONED,
    CONTENDED_ROUNDS,
    RESERVED,
    SUBMITTED,
    RunBudget,
    SpendEntry,
    TaskSpend,
    spend_report,
)
from tests.fakes import FakeTaskStateStore, make_context, make_generation
from tests.test_submission import _operator

log = logging.getLogger(__name__)
UNI_1, UNI_1_MAX = 0.0404, 0.1


class Run:
    """The run's published spend: one ``luma_spend`` value per task instance, as XCom keeps them."""

    def __init__(self) -> None:
        self.published: dict[str, TaskSpend] = {}

    def publish(self, label: str, *entries: SpendEntry) -> None:
        self.published[label] = TaskSpend(label, -1, entries)

    def read(self) -> list[TaskSpend]:
        return list(self.published.values())


def _entry(request_id: str, cost: float = UNI_1, status: str = RESERVED, at: float = 0.0) -> SpendEntry:
    generation_id = None if status == RESERVED else f"gen-{request_id}"
    return SpendEntry(request_id, generation_id, "uni-1", cost, status, at)


class Task:
    """One task instance's side of the guard: its reservation, withdrawn and renewed on the run."""

    def __init__(
        self, run: Run, name: str, cap: float, *, at: float, sleeps: list[str] | None = None
    ) -> None:
        self.run, self.name = run, name
        self.mine = _entry(name, at=at)
        self.sleeps = sleeps if sleeps is not None else []
        self.budget = RunBudget(
            cap, run.read, task_label=name, log=log, sleep=self._sleep, jitter=lambda: 0.0
        )

    def _sleep(self, _seconds: float) -> None:
        self.sleeps.append(self.name)

    def reserve(self) -> None:
        self.run.publish(self.name, self.mine)

    def withdraw(self) -> None:
        self.run.publish(self.name)

    def admit(self) -> None:
        self.budget.admit(self.mine, withdraw=self.withdraw, reserve=self.reserve)

    def submitted(self) -> None:
        self.run.publish(self.name, replace(self.mine, status=SUBMITTED, generation_id=f"gen-{self.name}"))


def test_what_fits_is_admitted_and_what_does_not_is_refused_naming_cap_spend_and_task() -> None:
    run = Run()
    run.publish("done", _entry("a", status=SUBMITTED), _entry("b", status=ABANDONED))
    fits, passes = Task(run, "fits[0]", 0.13, at=1), Task(run, "passes[1]", 0.13, at=2)

    fits.reserve()
    fits.admit()
    fits.submitted()
    passes.reserve()
    with pytest.raises(LumaRunBudgetExceededError) as refused:
        passes.admit()

    message = str(refused.value)
    assert "max_run_cost_usd=0.1300 USD would be passed by task passes[1]" in message
    assert "submitted 3 generation(s) estimated at 0.1212 USD" in message
    assert "would add 0.0404 USD" in message and "Nothing was sent" in message
    assert refused.value.retryable is False


def test_a_cap_met_exactly_is_not_passed() -> None:
    run = Run()
    run.publish("done", _entry("a", status=SUBMITTED), _entry("b", status=SUBMITTED))
    task = Task(run, "third", round(3 * UNI_1, 4), at=1)
    task.reserve()
    task.admit()


def test_two_tasks_racing_for_the_last_place_never_both_go() -> None:
    # Both reserved before either read, so each sees the other: without the guard both would POST.
    run = Run()
    run.publish("done", _entry("a", status=SUBMITTED))
    early = Task(run, "early", 2 * UNI_1, at=1.0)
    late = Task(run, "late", 2 * UNI_1, at=2.0)
    early.reserve()
    late.reserve()
    went: list[str] = []

    def early_goes_meanwhile(_seconds: float) -> None:
        early.admit()
        early.submitted()
        went.append("early")

    late.budget._sleep = early_goes_meanwhile  # what "early" does while "late" waits

    # "late" sees the earlier reservation, steps back and waits; "early" then fits and submits;
    # "late", renewed, no longer fits.
    with pytest.raises(LumaRunBudgetExceededError):
        late.admit()

    assert went == ["early"]
    assert {spend.task_id: spend.entries[0].status for spend in run.read() if spend.entries} == {
        "done": SUBMITTED,
        "early": SUBMITTED,
        "late": RESERVED,  # the caller withdraws it on the refusal
    }


def test_the_earliest_reservation_waits_for_the_later_ones_to_step_back() -> None:
    run = Run()
    early = Task(run, "early", UNI_1, at=1.0)
    late = Task(run, "late", UNI_1, at=2.0)
    early.reserve()
    late.reserve()
    rounds: list[str] = []

    def read_then_late_steps_back() -> list[TaskSpend]:
        spends = run.read()
        rounds.append("read")
        if len(rounds) == 1:
            late.withdraw()  # what "late" does on its own round, concurrently
        return spends

    early.budget = RunBudget(
        UNI_1,
        read_then_late_steps_back,
        task_label="early",
        log=log,
        sleep=lambda _: None,
        jitter=lambda: 0.0,
    )
    early.admit()

    assert rounds == ["read", "read"]
    assert run.published["early"].entries == (early.mine,)  # never withdrawn


def test_a_reservation_that_never_resolves_refuses_after_the_wait() -> None:
    # A task killed mid-POST leaves its reservation: its fate is unknown, so it may have been billed.
    run = Run()
    run.publish("killed", _entry("killed", at=0.0))
    task = Task(run, "waiting", UNI_1, at=5.0)
    task.reserve()

    with pytest.raises(LumaRunBudgetExceededError) as refused:
        task.admit()

    assert task.sleeps == ["waiting"] * CONTENDED_ROUNDS
    assert "concurrent submissions" in str(refused.value)
    assert run.published["waiting"].entries == (task.mine,)  # left for the caller to withdraw


def test_the_report_sums_per_task_and_model_and_counts_abandoned_and_unknown() -> None:
    spends = [
        TaskSpend("hero", -1, (_entry("1", status=SUBMITTED), _entry("0", status=ABANDONED))),
        TaskSpend("social", 0, (replace(_entry("2", UNI_1_MAX, SUBMITTED), model="uni-1-max"),)),
        TaskSpend("social", 1, (_entry("3"),)),
    ]
    assert spend_report(spends) == {
        "estimated_cost_usd": pytest.approx(3 * UNI_1 + UNI_1_MAX),
        "submissions": 4,
        "abandoned": 1,
        "fate_unknown": 1,
        "unpriced": 0,
        "by_task": {"hero": pytest.approx(2 * UNI_1), "social": pytest.approx(UNI_1 + UNI_1_MAX)},
        "by_model": {"uni-1": pytest.approx(3 * UNI_1), "uni-1-max": pytest.approx(UNI_1_MAX)},
        "unpriced_by_task": {},
        "note": None,
    }


# ----------------------------------------------------------------- the operator's side (a fake hook)


class RecordedStats:
    def __init__(self) -> None:
        self.counts: list[tuple[str, int, dict[str, Any]]] = []

    def incr(self, stat: str, count: int = 1, rate: int = 1, *, tags: dict[str, Any] | None = None) -> None:
        self.counts.append((stat, count, tags or {}))


@pytest.fixture
def stats(monkeypatch: pytest.MonkeyPatch) -> RecordedStats:
    recorded = RecordedStats()
    monkeypatch.setattr(_metrics, "_stats", lambda: recorded)
    return recorded


def test_each_try_publishes_its_spend_and_a_changed_request_abandons_the_earlier_one(
    fake_hook: Any, stats: RecordedStats
) -> None:
    store = FakeTaskStateStore()
    first = make_context(store, try_number=1)
    _operator(wait_for_completion=False).execute(first)
    [paid] = first["ti"].xcom["luma_spend"]["entries"]
    assert paid["status"] == SUBMITTED and paid["estimated_cost_usd"] == UNI_1

    second = make_context(store, try_number=2)
    result = _operator(wait_for_completion=False, prompt="a lighthouse at dawn").execute(second)

    assert result["billed_this_try"] is True
    assert result["abandoned_generations"] == [
        {
            "generation_id": paid["generation_id"],
            "request_id": paid["request_id"],
            "model": "uni-1",
            "estimated_cost_usd": UNI_1,
        }
    ]
    statuses = [entry["status"] for entry in second["ti"].xcom["luma_spend"]["entries"]]
    assert statuses == [ABANDONED, SUBMITTED]
    submitted = [c for c in stats.counts if c[0] == "luma.generation.submitted"]
    spend = [c for c in stats.counts if c[0] == "luma.estimated_spend_microusd"]
    assert submitted == [("luma.generation.submitted", 1, {"model": "uni-1", "type": "image"})] * 2
    assert spend == [("luma.estimated_spend_microusd", 40_400, {"model": "uni-1"})] * 2


def test_a_retry_that_reattaches_republishes_the_spend_and_pays_nothing(
    fake_hook: Any, stats: RecordedStats
) -> None:
    store = FakeTaskStateStore()
    first = _operator(wait_for_completion=False).execute(make_context(store, try_number=1))
    fake_hook.script([make_generation("completed", generation_id=first["generation_id"])])
    retry = make_context(store, try_number=2)  # Airflow cleared the XComs: a fresh task instance view

    result = _operator(wait_for_completion=False).execute(retry)

    assert result["billed_this_try"] is False and result["estimated_cost_usd"] == UNI_1
    assert [e["status"] for e in retry["ti"].xcom["luma_spend"]["entries"]] == [SUBMITTED]
    assert [c[0] for c in stats.counts].count("luma.generation.reused") == 1
    assert [c[0] for c in stats.counts].count("luma.generation.submitted") == 1


@pytest.mark.parametrize("cap", ["-1", "lots", "nan", True])
def test_a_bad_cap_fails_the_task_naming_the_field_before_anything_is_sent(fake_hook: Any, cap: Any) -> None:
    from airflow.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="max_run_cost_usd: must be a number of USD"):
        _operator(max_run_cost_usd=cap)
    assert fake_hook.created == []


class KilledWhileWaiting(BaseException):
    """Not an ``Exception``: like a kill, nothing may catch and handle it."""


def test_a_try_killed_while_the_budget_waits_leaves_no_pending_record(
    fake_hook: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The wait for concurrent reservations is seconds long: a kill in it must not read, next try,
    # as a POST of unknown fate (which would refuse to submit at all).
    from airflow_provider_luma._submission import STATE_KEY

    class Dag:
        task_dict = {"generate": _operator(wait_for_completion=False)}

    def killed(self: RunBudget, mine: SpendEntry, **_: Any) -> None:
        raise KilledWhileWaiting

    admit = RunBudget.admit
    monkeypatch.setattr(RunBudget, "admit", killed)
    store = FakeTaskStateStore()
    context = {**make_context(store), "dag": Dag()}
    with pytest.raises(KilledWhileWaiting):
        _operator(wait_for_completion=False, max_run_cost_usd=1).execute(context)
    assert fake_hook.created == [] and STATE_KEY not in store.values
    assert context["ti"].xcom["luma_spend"]["entries"] == []  # the reservation taken back

    monkeypatch.setattr(RunBudget, "admit", admit)
    second = {**make_context(store, try_number=2), "dag": Dag()}
    _operator(wait_for_completion=False, max_run_cost_usd=1).execute(second)
    assert len(fake_hook.created) == 1


class FailingXComTI:
    """A task instance whose ``luma_spend`` pushes fail (the API server, or a custom XCom backend, down)."""

    def __init__(self, ti: Any) -> None:
        self._ti = ti

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ti, name)

    def xcom_push(self, key: str, value: Any) -> None:
        raise OSError("XCom backend unreachable")


def test_a_failed_publish_before_the_post_leaves_no_pending_record(fake_hook: Any) -> None:
    from airflow.exceptions import AirflowException

    from airflow_provider_luma._submission import STATE_KEY

    store = FakeTaskStateStore()
    context = make_context(store)
    context["ti"] = FailingXComTI(context["ti"])
    with pytest.raises(AirflowException, match="nothing was sent"):
        _operator(wait_for_completion=False).execute(context)
    assert fake_hook.created == [] and store.values[STATE_KEY]["pending"] is False

    # So the retry submits, instead of failing for a POST of unknown fate that was never sent.
    _operator(wait_for_completion=False).execute(make_context(store, try_number=2))
    assert len(fake_hook.created) == 1


def test_a_try_that_fails_on_its_input_still_republishes_what_earlier_tries_paid(fake_hook: Any) -> None:
    store = FakeTaskStateStore()
    _operator(wait_for_completion=False).execute(make_context(store, try_number=1))
    retry = make_context(store, try_number=2)
    broken = _operator(wait_for_completion=False, prompt="{{ params.prompt }}")
    broken.prompt = ""  # rendered empty: the try fails on it
    with pytest.raises(Exception, match="prompt"):
        broken.execute(retry)
    [paid] = retry["ti"].xcom["luma_spend"]["entries"]
    assert paid["status"] == SUBMITTED and paid["estimated_cost_usd"] == UNI_1
