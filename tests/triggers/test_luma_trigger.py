"""LumaGenerationTrigger with a scripted hook and a fake clock: timing, tolerance, one event per path."""

from __future__ import annotations

import asyncio
import json

import pytest

from airflow_provider_luma import polling
from airflow_provider_luma.exceptions import (
    LumaAuthenticationError,
    LumaNotFoundError,
    LumaRateLimitError,
    LumaServerError,
    LumaTransportError,
    LumaUnexpectedResponseError,
)
from airflow_provider_luma.models import FailureCode
from airflow_provider_luma.triggers.luma import LumaGenerationTrigger
from tests.fakes import GEN_ID, RETRYABLE_CODES, START, FakeClock, FakeHook, make_generation


def _trigger(**overrides: object) -> LumaGenerationTrigger:
    kwargs: dict = {
        "generation_id": GEN_ID,
        "deadline": START + 120,
        "luma_conn_id": "luma_test",
        "first_poll_at": START + 20,
        "poll_interval": 2.0,
    }
    kwargs.update(overrides)
    return LumaGenerationTrigger(**kwargs)


async def _events(trigger: LumaGenerationTrigger) -> list[dict]:
    return [event.payload async for event in trigger.run()]


def test_serialize_round_trips_with_json_primitives_only() -> None:
    trigger = _trigger()
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_luma.triggers.luma.LumaGenerationTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert set(kwargs) == {"generation_id", "deadline", "luma_conn_id", "first_poll_at", "poll_interval"}
    assert LumaGenerationTrigger(**kwargs).serialize() == (classpath, kwargs)


async def test_success_waits_initial_delay_then_polls_every_interval(
    fake_hook: FakeHook, clock: FakeClock
) -> None:
    done = make_generation("completed", generation_id=GEN_ID)
    fake_hook.script([make_generation("queued", generation_id=GEN_ID)] * 3 + [done])
    events = await _events(_trigger())
    assert len(events) == 1
    event = events[0]
    assert event["status"] == "success"
    assert event["generation"]["state"] == "completed"
    assert event["generation"]["output_count"] == 1
    assert "X-Amz-Signature" not in json.dumps(event)
    assert fake_hook.get_times == [START + 20, START + 22, START + 24, START + 26]
    assert fake_hook.init_kwargs == [{"luma_conn_id": "luma_test"}]
    assert fake_hook.closed == 1


async def test_restarted_trigger_does_not_wait_again(fake_hook: FakeHook, clock: FakeClock) -> None:
    clock.time = START + 50  # the triggerer restarted long after first_poll_at
    fake_hook.script([make_generation("completed", generation_id=GEN_ID)])
    events = await _events(_trigger())
    assert events[0]["status"] == "success"
    # Not the initial wait again: only this generation's place within one interval.
    offset = polling.PollPlan(GEN_ID, START + 120, START + 20, 2.0).overdue_offset()
    assert 0.0 <= offset < 2.0 and fake_hook.get_times == [START + 50 + offset]


def test_overdue_first_polls_spread_over_one_interval_and_stay_put() -> None:
    """A triggerer restarting with many waits does not send all their GETs in one turn of its loop."""
    import uuid

    offsets = [
        polling.PollPlan(str(uuid.uuid4()), START + 120, START, 2.0).overdue_offset() for _ in range(1000)
    ]
    assert all(0.0 <= offset < 2.0 for offset in offsets)
    # Spread across the interval, in every tenth of it.
    assert {int(offset / 0.2) for offset in offsets} == set(range(10))
    # The same wait lands at the same place on whichever triggerer runs it.
    assert polling.PollPlan(GEN_ID, 0, 0).overdue_offset() == polling.PollPlan(GEN_ID, 9, 9).overdue_offset()


async def test_an_overdue_first_poll_never_waits_past_the_deadline(
    fake_hook: FakeHook, clock: FakeClock
) -> None:
    clock.time = START + 119.99
    fake_hook.script([make_generation("processing", generation_id=GEN_ID)])
    events = await _events(_trigger())
    assert events[0]["status"] == "timeout" and fake_hook.get_times == [START + 120]


@pytest.mark.parametrize("code", [code.value for code in FailureCode])
async def test_each_failure_code_is_one_failed_event(
    fake_hook: FakeHook, clock: FakeClock, code: str
) -> None:
    fake_hook.script(
        [
            make_generation("processing", generation_id=GEN_ID),
            make_generation("failed", generation_id=GEN_ID, failure_code=code),
        ]
    )
    events = await _events(_trigger())
    assert len(events) == 1
    assert events[0]["status"] == "failed"
    assert events[0]["generation"]["failure_code"] == code
    assert events[0]["retryable"] is (code in RETRYABLE_CODES)
    assert code in events[0]["message"]


async def test_timeout_comes_after_a_final_check_at_the_deadline(
    fake_hook: FakeHook, clock: FakeClock
) -> None:
    fake_hook.script([make_generation("processing", generation_id=GEN_ID)])
    events = await _events(_trigger(deadline=START + 25, poll_interval=2.0))
    assert [event["status"] for event in events] == ["timeout"]
    # 20, 22, 24, then the last GET exactly at the deadline (25), not beyond it.
    assert fake_hook.get_times == [START + 20, START + 22, START + 24, START + 25]
    assert events[0]["retryable"] is True
    assert "may still finish and be billed" in events[0]["message"]
    assert events[0]["generation"]["state"] == "processing"


async def test_completion_seen_by_the_final_check_is_a_success(fake_hook: FakeHook, clock: FakeClock) -> None:
    fake_hook.script(
        [make_generation("processing", generation_id=GEN_ID)] * 3
        + [make_generation("completed", generation_id=GEN_ID)]
    )
    events = await _events(_trigger(deadline=START + 25))
    assert events[0]["status"] == "success"
    assert fake_hook.get_times[-1] == START + 25


async def test_transient_errors_are_tolerated(fake_hook: FakeHook, clock: FakeClock, caplog) -> None:
    fake_hook.script(
        [
            LumaTransportError("connection reset"),
            LumaServerError(502, "Upstream service unavailable", "r1"),
            LumaUnexpectedResponseError(200, "unreadable generation body", "r2"),
            make_generation("completed", generation_id=GEN_ID),
        ]
    )
    events = await _events(_trigger())
    # An unreadable body is not retryable: the wait ends in an error, it is never a success.
    assert [event["status"] for event in events] == ["error"]
    assert "unreadable" in events[0]["message"]
    assert len(fake_hook.get_calls) == 3
    assert "Transient error polling generation" in caplog.text


async def test_transient_errors_then_success(fake_hook: FakeHook, clock: FakeClock) -> None:
    fake_hook.script(
        [
            LumaTransportError("reset"),
            LumaServerError(503, "down", "r"),
            make_generation("completed", generation_id=GEN_ID),
        ]
    )
    events = await _events(_trigger())
    assert [event["status"] for event in events] == ["success"]


async def test_rate_limit_retry_after_is_honoured(fake_hook: FakeHook, clock: FakeClock) -> None:
    fake_hook.script(
        [
            LumaRateLimitError(429, "Rate limit exceeded", "r", retry_after=12),
            make_generation("completed", generation_id=GEN_ID),
        ]
    )
    events = await _events(_trigger())
    assert events[0]["status"] == "success"
    assert fake_hook.get_times == [START + 20, START + 32]


async def test_transient_errors_until_the_deadline_end_in_timeout(
    fake_hook: FakeHook, clock: FakeClock
) -> None:
    fake_hook.script([LumaTransportError("reset")])
    events = await _events(_trigger(deadline=START + 30))
    assert [event["status"] for event in events] == ["timeout"]
    assert "reset" in events[0]["message"]
    assert fake_hook.get_times[-1] == START + 30


@pytest.mark.parametrize(
    "error",
    [
        LumaAuthenticationError(401, "Invalid API key", "r"),
        LumaNotFoundError(404, "Generation not found", "r"),
    ],
)
async def test_non_retryable_errors_end_in_one_error_event(
    fake_hook: FakeHook, clock: FakeClock, error
) -> None:
    fake_hook.script([error])
    events = await _events(_trigger())
    assert len(events) == 1
    assert events[0]["status"] == "error"
    assert events[0]["retryable"] is False
    assert str(error.status_code) in events[0]["message"]
    assert len(fake_hook.get_calls) == 1
    assert fake_hook.closed == 1


async def test_two_copies_in_parallel_each_yield_one_event(fake_hook: FakeHook, clock: FakeClock) -> None:
    """After a triggerer fail-over two copies may run at once: each reads, neither writes."""
    fake_hook.script(
        [make_generation("processing", generation_id=GEN_ID)] * 2
        + [make_generation("completed", generation_id=GEN_ID)]
    )
    first, second = await asyncio.gather(_events(_trigger()), _events(_trigger()))
    assert [event["status"] for event in first + second] == ["success", "success"]
    assert fake_hook.created == [] and len(fake_hook.get_calls) == 4


async def test_an_unexpected_error_still_ends_in_one_event(fake_hook: FakeHook, clock: FakeClock) -> None:
    """A missing connection (or a secrets backend down) must not leave the task to the deferral timeout."""
    fake_hook.script([KeyError("the connection 'luma_test' is not defined")])
    events = await _events(_trigger())
    assert len(events) == 1
    assert events[0]["status"] == "error" and events[0]["retryable"] is True
    assert "KeyError" in events[0]["message"]


def test_poll_plan_starting_now_clamps_the_initial_wait_to_the_deadline(clock: FakeClock) -> None:
    plan = polling.PollPlan.starting_now(GEN_ID, timeout=5, initial_wait=20, poll_interval=2)
    assert plan.deadline == START + 5
    assert plan.first_poll_at == START + 5


async def test_each_get_is_bounded_by_the_deadline(fake_hook: FakeHook, clock: FakeClock) -> None:
    fake_hook.script(
        [make_generation("processing", generation_id=GEN_ID)] * 2 + [make_generation("completed")]
    )
    await _events(_trigger())
    assert fake_hook.get_deadlines == [START + 120] * 3


async def test_an_unknown_state_is_polled_on_until_the_deadline_and_warned_once(
    fake_hook: FakeHook, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    from airflow_provider_luma.models import Generation

    odd = Generation.from_json(
        {"id": GEN_ID, "state": "moderating", "model": "uni-1", "type": "image", "created_at": ""}
    )
    fake_hook.script([odd])
    with caplog.at_level("WARNING", logger="airflow_provider_luma.polling"):
        events = await _events(_trigger())
    assert [event["status"] for event in events] == ["timeout"]
    assert events[0]["generation"]["state"] == "moderating"
    assert fake_hook.get_times[-1] == START + 120  # polled to the deadline, not failed at once
    warnings = [record for record in caplog.records if "moderating" in record.getMessage()]
    assert len(warnings) == 1


async def test_an_unknown_state_that_then_completes_is_a_success(
    fake_hook: FakeHook, clock: FakeClock
) -> None:
    from airflow_provider_luma.models import Generation

    odd = Generation.from_json({"id": GEN_ID, "state": "moderating", "model": "uni-1", "type": "image"})
    fake_hook.script([odd, make_generation("completed", generation_id=GEN_ID)])
    assert [event["status"] for event in await _events(_trigger())] == ["success"]


async def test_a_wait_stuck_past_the_deadline_still_ends_in_one_timeout_event(
    fake_hook: FakeHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever hangs (a connection lookup, a GET that ignores its deadline), the event comes in time."""
    monkeypatch.setattr(polling, "TRIGGER_GRACE", 0.05)
    never = asyncio.Event()

    async def hung_get(generation_id: str, *, deadline: float | None = None) -> None:
        await never.wait()

    monkeypatch.setattr(fake_hook, "aget_generation", hung_get)
    now = polling.now()
    events = await _events(_trigger(deadline=now + 0.05, first_poll_at=None))
    assert [event["status"] for event in events] == ["timeout"]
    assert events[0]["retryable"] is True
    assert fake_hook.closed == 1  # the client was still given back


async def test_a_wait_that_just_became_due_polls_at_once(fake_hook: FakeHook, clock: FakeClock) -> None:
    """Only a wait overdue by an interval or more (a restart) is spread; one just deferred is not."""
    clock.time = START + 21  # first_poll_at was START + 20: due, not a restart
    fake_hook.script([make_generation("completed", generation_id=GEN_ID)])
    await _events(_trigger())
    assert fake_hook.get_times == [START + 21]
    fake_hook.script([make_generation("completed", generation_id=GEN_ID)])
    await _events(_trigger(first_poll_at=None))
    assert fake_hook.get_times[-1] == START + 21
