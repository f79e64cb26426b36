"""
The fault matrix, polling rows: the real trigger and the real worker loop against the emulator over HTTP.

Each row asserts the outcome (one event, its status), the time it took against the deadline, and the
emulator's counters: the waiters only ever GET, so no row may add a POST or a generation. The trigger
rows run with every blocking call on the event loop an error (blockbuster) and ``ResourceWarning`` (an
unclosed client or socket) an error.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_luma import polling
from airflow_provider_luma.hooks.luma import LumaHook
from airflow_provider_luma.models import GenerationRequest
from airflow_provider_luma.testing import Fault
from airflow_provider_luma.triggers.luma import LumaGenerationTrigger

if TYPE_CHECKING:
    from airflow_provider_luma.testing import LumaEmulator

pytestmark = [
    pytest.mark.usefixtures("luma_connection"),
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.timeout(60),
]

POST = "POST /v1/generations"
GET = "GET /v1/generations/{id}"
#: How far past its deadline a wait may report: the last GET's own bound plus scheduling noise.
DEADLINE_SLACK = 3.0


def _submit(emulator: LumaEmulator, *, processing: bool = False) -> str:
    """One generation, made before the row starts with the sync hook (async rows: in a thread)."""
    with LumaHook(luma_conn_id="luma_default") as hook:
        generation_id = hook.create_generation(GenerationRequest.build(prompt="a lighthouse at dusk")).id
    if processing:
        emulator.set_state(generation_id, "processing")
    return generation_id


def _trigger(generation_id: str, *, timeout: float = 20.0) -> LumaGenerationTrigger:
    now = time.time()
    return LumaGenerationTrigger(
        generation_id=generation_id, deadline=now + timeout, first_poll_at=now, poll_interval=0.05
    )


async def _events(trigger: LumaGenerationTrigger) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


def _posts(emulator: LumaEmulator) -> int:
    return emulator.stats.requests.get(POST, 0)


# --- the trigger --------------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_blocking_calls")
@pytest.mark.parametrize(
    "fault",
    [
        Fault(method="GET", status=500, times=3),
        Fault(method="GET", status=503, times=3),
        Fault(method="GET", kind="malformed", times=2),
        Fault(method="GET", kind="drop", times=3),
    ],
    ids=["500-burst", "503-burst", "malformed-json", "dropped-connections"],
)
async def test_transient_get_faults_are_ridden_out_to_one_success(
    luma_emulator: LumaEmulator, fault: Fault
) -> None:
    generation_id = await asyncio.to_thread(_submit, luma_emulator)
    luma_emulator.add_fault(fault)
    events = await _events(_trigger(generation_id))
    assert [event["status"] for event in events] == ["success"]
    assert luma_emulator.pending_faults() == []  # every scripted fault was met
    assert _posts(luma_emulator) == 1 and luma_emulator.stats.generations_created == 1


@pytest.mark.usefixtures("no_blocking_calls")
async def test_a_hung_get_cannot_hold_the_trigger_past_its_deadline(luma_emulator: LumaEmulator) -> None:
    generation_id = await asyncio.to_thread(_submit, luma_emulator, processing=True)
    luma_emulator.add_fault(Fault(method="GET", kind="slow", delay=120, times=50))
    trigger = _trigger(generation_id, timeout=2.0)
    events = await _events(trigger)
    late = time.time() - trigger.deadline
    assert [event["status"] for event in events] == ["timeout"]
    assert late < DEADLINE_SLACK, f"the event came {late:.1f}s after the deadline"
    assert _posts(luma_emulator) == 1


@pytest.mark.usefixtures("no_blocking_calls")
async def test_an_unknown_state_is_waited_on_until_the_deadline(luma_emulator: LumaEmulator) -> None:
    generation_id = await asyncio.to_thread(_submit, luma_emulator)
    luma_emulator.set_state(generation_id, "moderating", allow_unknown=True)
    trigger = _trigger(generation_id, timeout=1.0)
    events = await _events(trigger)
    assert [event["status"] for event in events] == ["timeout"]
    assert events[0]["generation"]["state"] == "moderating"
    assert events[0]["retryable"] is True
    assert 0 <= time.time() - trigger.deadline < DEADLINE_SLACK
    assert luma_emulator.stats.requests[GET] > 2  # it kept polling instead of failing at once


@pytest.mark.usefixtures("no_blocking_calls")
async def test_a_trigger_rebuilt_after_a_triggerer_restart_reports_once(luma_emulator: LumaEmulator) -> None:
    generation_id = await asyncio.to_thread(_submit, luma_emulator, processing=True)
    first = _trigger(generation_id)
    running = asyncio.ensure_future(_events(first))
    polls = luma_emulator.stats.requests.get(GET, 0)
    while luma_emulator.stats.requests.get(GET, 0) < polls + 2:  # it is polling: restart it now
        await asyncio.sleep(0.01)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running

    classpath, kwargs = first.serialize()
    assert classpath.endswith("LumaGenerationTrigger")
    rebuilt = LumaGenerationTrigger(**kwargs)
    assert rebuilt.deadline == first.deadline  # the clock did not start again
    luma_emulator.set_state(generation_id, "completed")
    events = await _events(rebuilt)
    assert [event["status"] for event in events] == ["success"]
    assert _posts(luma_emulator) == 1 and luma_emulator.stats.generations_created == 1


@pytest.mark.usefixtures("no_blocking_calls")
async def test_two_copies_of_one_trigger_each_report_the_same_outcome_once(
    luma_emulator: LumaEmulator,
) -> None:
    generation_id = await asyncio.to_thread(_submit, luma_emulator)
    trigger = _trigger(generation_id)
    copy = LumaGenerationTrigger(**trigger.serialize()[1])
    first, second = await asyncio.gather(_events(trigger), _events(copy))
    assert [event["status"] for event in first] == [event["status"] for event in second] == ["success"]
    assert first[0]["generation_id"] == second[0]["generation_id"] == generation_id
    assert _posts(luma_emulator) == 1


# --- the worker loop and the sensor: the same deadline rules, synchronously ------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        Fault(method="GET", kind="slow", delay=120, times=50),
        Fault(method="GET", kind="trickle", delay=0.2, times=50),
    ],
    ids=["hung", "trickled"],
)
def test_the_worker_loop_ends_by_its_deadline_despite_a_stuck_get(
    luma_emulator: LumaEmulator, fault: Fault
) -> None:
    generation_id = _submit(luma_emulator, processing=True)
    luma_emulator.add_fault(fault)
    plan = polling.PollPlan.starting_now(generation_id, timeout=2.0, initial_wait=0.0, poll_interval=0.05)
    with LumaHook(luma_conn_id="luma_default") as hook:
        outcome = polling.wait_for_generation(hook.get_generation, plan)
    assert outcome.status == polling.TIMEOUT
    assert time.time() - plan.deadline < DEADLINE_SLACK
    assert _posts(luma_emulator) == 1


def test_the_sensor_ends_by_its_timeout_despite_a_hung_get(luma_emulator: LumaEmulator) -> None:
    from airflow_provider_luma._compat import AirflowSensorTimeout
    from airflow_provider_luma.sensors.luma import LumaGenerationSensor
    from tests.fakes import make_context

    generation_id = _submit(luma_emulator, processing=True)
    luma_emulator.add_fault(Fault(method="GET", kind="slow", delay=120, times=50))
    sensor = LumaGenerationSensor(task_id="wait", generation_id=generation_id, timeout=2, poke_interval=0.1)
    started = time.time()
    with pytest.raises(AirflowSensorTimeout):
        sensor.execute(make_context())
    assert time.time() - started < 2 + DEADLINE_SLACK
    assert _posts(luma_emulator) == 1
