"""LumaGenerationTrigger against the emulator over real HTTP on 127.0.0.1 (the real hook, real time)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

import pytest

from airflow_provider_luma.hooks.luma import LumaHook
from airflow_provider_luma.models import GenerationRequest
from airflow_provider_luma.triggers.luma import LumaGenerationTrigger

pytestmark = [
    pytest.mark.usefixtures("luma_connection", "no_blocking_calls"),
    pytest.mark.filterwarnings("error::ResourceWarning"),
]


def _submit(prompt: str = "a lighthouse at dusk") -> str:
    with LumaHook(luma_conn_id="luma_default") as hook:
        return hook.create_generation(GenerationRequest.build(prompt=prompt)).id


def _trigger(generation_id: str, *, timeout: float = 30.0) -> LumaGenerationTrigger:
    now = time.time()
    return LumaGenerationTrigger(
        generation_id=generation_id, deadline=now + timeout, first_poll_at=now + 0.05, poll_interval=0.05
    )


async def _events(trigger: LumaGenerationTrigger) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


async def test_completed_generation_gives_one_success_event(luma_emulator: Any) -> None:
    generation_id = await asyncio.to_thread(_submit)
    events = await _events(_trigger(generation_id))
    assert [event["status"] for event in events] == ["success"]
    assert events[0]["generation"]["output_count"] == 1
    assert "X-Amz" not in str(events) and "http" not in str(events[0]["generation"])
    assert luma_emulator.stats.requests["POST /v1/generations"] == 1  # the trigger never POSTs


async def test_failed_generation_gives_one_failed_event(luma_emulator: Any) -> None:
    luma_emulator.fail_next_generations("content_moderated", count=1)
    events = await _events(_trigger(await asyncio.to_thread(_submit)))
    assert [event["status"] for event in events] == ["failed"]
    assert events[0]["generation"]["failure_code"] == "content_moderated"
    assert events[0]["retryable"] is False


async def test_dropped_gets_are_ridden_out(luma_emulator: Any) -> None:
    from airflow_provider_luma.testing import Fault

    generation_id = await asyncio.to_thread(_submit)
    luma_emulator.add_fault(Fault(method="GET", kind="drop", times=2))
    events = await _events(_trigger(generation_id))
    assert [event["status"] for event in events] == ["success"]


async def test_unknown_generation_is_an_error_event(luma_emulator: Any) -> None:
    events = await _events(_trigger("0b5a4e8c-1d7a-4c36-9f7e-2a6b0d9e1f23"))
    assert [event["status"] for event in events] == ["error"]
    assert "404" in events[0]["message"]


async def test_deadline_gives_a_timeout_after_a_final_check(luma_emulator: Any) -> None:
    generation_id = await asyncio.to_thread(_submit)
    # A deadline already reached: one GET (the final check) finds the generation still queued.
    trigger = LumaGenerationTrigger(generation_id=generation_id, deadline=time.time(), first_poll_at=None)
    events = await _events(trigger)
    assert [event["status"] for event in events] == ["timeout"]
    assert events[0]["generation"]["state"] in ("queued", "processing")
    assert "may still finish and be billed" in events[0]["message"]
    assert luma_emulator.stats.requests["GET /v1/generations/{id}"] == 1


_IMPORT_THREAD_PROBE = """
import asyncio, importlib.abc, json, sys, threading, time

class Spy(importlib.abc.MetaPathFinder):
    seen = {}
    def find_spec(self, name, path=None, target=None):
        if name in ("airflow_provider_luma.hooks.luma", "aiohttp"):
            self.seen.setdefault(name, threading.current_thread() is threading.main_thread())
        return None

sys.meta_path.insert(0, Spy())
from airflow_provider_luma.triggers.luma import LumaGenerationTrigger

imported_with_trigger = sorted(Spy.seen)
trigger = LumaGenerationTrigger(generation_id=sys.argv[1], deadline=time.time() + 30, poll_interval=0.05)

async def first_event():
    async for event in trigger.run():
        return event.payload

payload = asyncio.run(first_event())
print(json.dumps({"with_trigger": imported_with_trigger, "on_loop": Spy.seen, "status": payload["status"]}))
"""


def test_the_first_trigger_imports_the_hook_off_the_event_loop() -> None:
    # A fresh interpreter (in this one the hook is long imported), with this one's connection.
    probe = subprocess.run(
        [sys.executable, "-c", _IMPORT_THREAD_PROBE, _submit()],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    seen = json.loads(probe.stdout.strip().splitlines()[-1])

    assert "airflow_provider_luma.hooks.luma" not in seen["with_trigger"], "the trigger imported the hook"
    # What the trigger's first run imports (Airflow 3.1 imports aiohttp itself) it imports off the loop.
    imported_by_the_run = {
        name: main for name, main in seen["on_loop"].items() if name not in seen["with_trigger"]
    }
    assert "airflow_provider_luma.hooks.luma" in imported_by_the_run
    assert not any(imported_by_the_run.values()), imported_by_the_run
    assert seen["status"] == "success"
