"""
The submission record: written ahead of the POST, replaced by its answer, and read by every later try.

Driven through ``LumaGenerateImageOperator.execute`` with a scripted hook and an in-memory store, one
try after another, as Airflow would run them (a retry, or a person's clear: both only increment the
try number; the store is the same).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from airflow.exceptions import AirflowFailException, TaskDeferred

from airflow_provider_luma._compat import AirflowTaskTimeout
from airflow_provider_luma._submission import MAX_REQUEST_ID_LENGTH, STATE_KEY, request_id_for
from airflow_provider_luma.exceptions import (
    LumaInsufficientFundsError,
    LumaSubmissionUnknownError,
    LumaWaitError,
)
from airflow_provider_luma.models import Generation, GenerationRequest
from airflow_provider_luma.operators.generate import LumaGenerateImageOperator
from tests.fakes import (
    GEN_ID,
    OTHER_ID,
    FakeClock,
    FakeHook,
    FakeTaskStateStore,
    make_context,
    make_event,
    make_generation,
)


def _operator(**kwargs: Any) -> LumaGenerateImageOperator:
    return LumaGenerateImageOperator(
        **{"task_id": "generate", "prompt": "a lighthouse at dusk", "deferrable": False, **kwargs}
    )


def _try(store: FakeTaskStateStore, try_number: int, *, max_tries: int = 0, **kwargs: Any) -> dict[str, Any]:
    """
    One try; Airflow's own retries keep ``max_tries``, a person's clear raises it (to the last try
    number plus the task's retries, none here).
    """
    context = make_context(store, try_number=try_number, max_tries=max_tries)
    return _operator(wait_for_completion=False, **kwargs).execute(context)


class InterruptedHook(FakeHook):
    """A hook whose POST is interrupted, as SIGALRM or a kill interrupts the wait for its answer."""

    def __init__(self, interruption: BaseException | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.interruption = interruption

    def create_generation(self, request: GenerationRequest, *, request_id: str | None = None) -> Generation:
        if self.interruption is None:
            return super().create_generation(request, request_id=request_id)
        self.created.append(request)
        self.request_ids.append(request_id)
        raise self.interruption


@pytest.fixture
def interrupted_hook(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> InterruptedHook:
    import airflow_provider_luma.hooks.luma as module

    hook = InterruptedHook(AirflowTaskTimeout("Timeout, PID: 1"), clock=clock)
    monkeypatch.setattr(module, "LumaHook", hook)
    return hook


# --- the request id --------------------------------------------------------------------------------


def test_request_id_names_the_task_and_is_header_safe() -> None:
    request_id = request_id_for("marketing", "scheduled__2026-12-02T00:00:00+00:00", "hero.generate", 3, 2)
    assert request_id == "airflow-marketing-scheduled__2026-12-02T00_00_00_00_00-hero.generate-3-2"


def test_long_request_ids_are_bounded_and_stay_distinct() -> None:
    long_dag = "d" * 300
    first = request_id_for(long_dag, "run-a", "t", 0, 1)
    second = request_id_for(long_dag, "run-b", "t", 0, 1)
    assert len(first) == len(second) == MAX_REQUEST_ID_LENGTH
    assert first != second
    assert first.endswith("-0-1")  # map index and try stay readable


# --- write-ahead ----------------------------------------------------------------------------------


def test_the_record_is_pending_while_the_post_is_in_flight(fake_hook: FakeHook) -> None:
    store = FakeTaskStateStore()
    seen: list[Any] = []
    original = fake_hook.create_generation

    def create(request: GenerationRequest, *, request_id: str | None = None) -> Generation:
        seen.append(dict(store.values[STATE_KEY]))
        return original(request, request_id=request_id)

    fake_hook.create_generation = create  # type: ignore[method-assign]
    fake_hook.create_result = make_generation("queued", generation_id=GEN_ID)
    result = _try(store, 1)
    [ahead] = seen
    assert ahead.pop("reserved_at") == pytest.approx(time.time(), abs=60)
    assert ahead == {
        "request_id": fake_hook.request_ids[0],
        "fingerprint": GenerationRequest.build(prompt="a lighthouse at dusk").fingerprint(),
        "generation_id": None,
        "pending": True,
        "failure_reported": None,
        "reported_max_tries": None,
        # The run's reservation: what it costs, and which try pays.
        "model": "uni-1",
        "estimated_cost_usd": 0.0404,
        "type": "image",
        "submitted_try": 1,
        "abandoned": [],
    }
    assert store.values[STATE_KEY]["generation_id"] == GEN_ID
    assert store.values[STATE_KEY]["pending"] is False
    assert result["request_id"] == fake_hook.request_ids[0]


def test_execution_timeout_during_the_post_is_fate_unknown_and_the_retry_does_not_post(
    interrupted_hook: InterruptedHook,
) -> None:
    store = FakeTaskStateStore()
    with pytest.raises(AirflowFailException, match="may be billed") as info:
        _try(store, 1)
    request_id = interrupted_hook.request_ids[0]
    assert request_id is not None and request_id in str(info.value)
    assert "execution_timeout" in str(info.value)
    assert isinstance(info.value.__cause__, LumaSubmissionUnknownError)
    assert store.values[STATE_KEY]["pending"] is True


def test_a_kill_during_the_post_leaves_it_pending_and_the_next_try_refuses_to_post(
    interrupted_hook: InterruptedHook, capsys: pytest.CaptureFixture[str]
) -> None:
    interrupted_hook.interruption = KeyboardInterrupt()
    store = FakeTaskStateStore()
    with pytest.raises(KeyboardInterrupt):
        _try(store, 1)
    first_request_id = interrupted_hook.request_ids[0]
    assert first_request_id is not None
    assert store.values[STATE_KEY]["pending"] is True
    assert "fate is unknown" in capsys.readouterr().out

    # Airflow's own retry: no POST, a final failure naming the first try's request.
    with pytest.raises(AirflowFailException) as info:
        _try(store, 2)
    assert first_request_id in str(info.value) and "clear the task" in str(info.value)
    assert len(interrupted_hook.created) == 1

    # A person's clear: a new POST, on purpose, and the log says so.
    interrupted_hook.interruption = None
    interrupted_hook.create_result = make_generation("queued", generation_id=GEN_ID)
    result = _try(store, 3, max_tries=2)  # the clear raised max_tries
    assert result["generation_id"] == GEN_ID and len(interrupted_hook.created) == 2
    assert "submitting anew, on purpose" in capsys.readouterr().out


def test_a_kill_between_the_201_and_the_record_makes_the_next_try_refuse(fake_hook: FakeHook) -> None:
    class KilledOnSecondWrite(FakeTaskStateStore):
        def set(self, key: str, value: Any, *, retention: Any = None) -> None:
            if value.get("generation_id"):
                raise KeyboardInterrupt  # the worker dies right after the 201
            super().set(key, value, retention=retention)

    store = KilledOnSecondWrite()
    fake_hook.create_result = make_generation("queued", generation_id=GEN_ID)
    with pytest.raises(KeyboardInterrupt):
        _try(store, 1)
    with pytest.raises(AirflowFailException, match=r"fate|lost"):
        _try(store, 2)
    assert len(fake_hook.created) == 1


# --- a person's clear after a final failure pays again, on purpose ---------------------------------------


@pytest.mark.parametrize("code", ["budget_exhausted", "content_moderated"])
def test_a_clear_after_a_final_generation_failure_submits_once_more(
    fake_hook: FakeHook, code: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = FakeTaskStateStore()
    fake_hook.create_result = make_generation("queued", generation_id=GEN_ID)
    fake_hook.script([make_generation("failed", generation_id=GEN_ID, failure_code=code)])
    with pytest.raises(AirflowFailException):
        _operator().execute(make_context(store, try_number=1))
    assert store.values[STATE_KEY]["failure_reported"] == "LumaGenerationFailedError"

    fake_hook.create_result = make_generation("queued", generation_id=OTHER_ID)
    result = _try(store, 2, max_tries=1)
    assert result["generation_id"] == OTHER_ID
    assert len(fake_hook.created) == 2
    assert f"reporting that generation {GEN_ID} failed ({code})" in capsys.readouterr().out


def test_without_a_reported_failure_the_same_failure_is_repeated_not_paid_again(fake_hook: FakeHook) -> None:
    """A failed generation found by a try that was not cleared after a report (e.g. an old record)."""
    store = FakeTaskStateStore(
        {
            STATE_KEY: {
                "request_id": "r",
                "fingerprint": GenerationRequest.build(prompt="a lighthouse at dusk").fingerprint(),
                "generation_id": GEN_ID,
            }
        }
    )
    fake_hook.script([make_generation("failed", generation_id=GEN_ID, failure_code="content_moderated")])
    with pytest.raises(AirflowFailException):
        _try(store, 2)
    assert fake_hook.created == []


def test_a_clear_after_a_refused_post_submits(fake_hook: FakeHook) -> None:
    store = FakeTaskStateStore()
    fake_hook.create_result = LumaInsufficientFundsError(402, "Insufficient credits.", "r")
    with pytest.raises(AirflowFailException):
        _try(store, 1)
    assert store.values[STATE_KEY]["pending"] is False
    fake_hook.create_result = make_generation("queued", generation_id=GEN_ID)
    assert _try(store, 2, max_tries=1)["generation_id"] == GEN_ID
    assert len(fake_hook.created) == 2


def test_a_clear_after_a_final_wait_error_reattaches_to_a_generation_still_running(
    fake_hook: FakeHook,
) -> None:
    """The reported failure was the wait's (a revoked key), not the generation's: nothing to pay for."""
    store = FakeTaskStateStore()
    fake_hook.create_result = make_generation("queued", generation_id=GEN_ID)
    operator = _operator(deferrable=True)
    context = make_context(store)
    with pytest.raises(TaskDeferred):
        operator.execute(context)
    with pytest.raises(AirflowFailException):  # the trigger reported a final error
        operator.execute_complete(
            context,
            {"status": "error", "generation_id": GEN_ID, "message": "HTTP 401", "retryable": False},
        )
    assert store.values[STATE_KEY]["failure_reported"] == "LumaWaitError"
    fake_hook.script([make_generation("processing", generation_id=GEN_ID)])
    assert _try(store, 2, max_tries=1)["generation_id"] == GEN_ID
    assert len(fake_hook.created) == 1
    # The cleared try acted on the report: it is gone, so Airflow's own retry of this try (same
    # max_tries) that finds the generation failed for good repeats that failure, and pays nothing.
    assert store.values[STATE_KEY]["failure_reported"] is None
    fake_hook.script([make_generation("failed", generation_id=GEN_ID, failure_code="content_moderated")])
    with pytest.raises(AirflowFailException, match="content_moderated"):
        _try(store, 3, max_tries=1)
    assert len(fake_hook.created) == 1


def test_a_report_airflow_never_heard_is_not_taken_for_a_clear(interrupted_hook: InterruptedHook) -> None:
    """The failure was recorded, then a kill stopped the try: Airflow's own retry must not pay again."""
    store = FakeTaskStateStore()
    with pytest.raises(AirflowFailException):
        _try(store, 1)  # fate unknown, reported with max_tries 0
    with pytest.raises(AirflowFailException, match="answer was lost"):
        _try(store, 2, max_tries=0)  # Airflow's retry (as after a kill): max_tries unchanged
    assert len(interrupted_hook.created) == 1


def test_a_pending_record_outranks_a_changed_request_and_resubmit_on_retry(
    interrupted_hook: InterruptedHook,
) -> None:
    """A template on the time, or a source presigned anew, must not make a kill pay twice."""
    interrupted_hook.interruption = KeyboardInterrupt()
    store = FakeTaskStateStore()
    with pytest.raises(KeyboardInterrupt):
        _try(store, 1)
    for changed in ({"prompt": "a lighthouse at dawn"}, {"resubmit_on_retry": True}):
        with pytest.raises(AirflowFailException, match="answer was lost"):
            _try(store, 2, **changed)
    assert len(interrupted_hook.created) == 1


def test_an_interruption_while_nothing_was_sent_leaves_the_retry_free_to_post(
    interrupted_hook: InterruptedHook,
) -> None:
    """A timeout while the hook waited out a 429: every answer so far proved nothing was queued."""
    interrupted_hook.submission_may_have_been_sent = False
    store = FakeTaskStateStore()
    with pytest.raises(AirflowTaskTimeout):  # a plain timeout: Airflow retries, as for any task
        _try(store, 1)
    assert store.values[STATE_KEY]["pending"] is False
    interrupted_hook.interruption = None
    interrupted_hook.create_result = make_generation("queued", generation_id=GEN_ID)
    assert _try(store, 2)["generation_id"] == GEN_ID


# --- the event must be about the generation this task submitted -------------------------------------------


def test_an_event_about_another_generation_is_a_retryable_error(clock: FakeClock) -> None:
    event = make_event("success", generation_id=OTHER_ID) | {"generation_id": OTHER_ID}
    with pytest.raises(LumaWaitError, match=f"waits for {GEN_ID}"):
        _operator().execute_complete(make_context(), event, request={"model": "uni-1"}, generation_id=GEN_ID)


@pytest.mark.parametrize("missing", ["generation_id", "model", "type"])
def test_a_malformed_success_event_is_a_clear_retryable_error(clock: FakeClock, missing: str) -> None:
    event = make_event("success")
    del event["generation"][missing]
    with pytest.raises(LumaWaitError, match="malformed") as info:
        _operator().execute_complete(make_context(), event, request={"model": "uni-1"}, generation_id=GEN_ID)
    assert info.value.retryable
