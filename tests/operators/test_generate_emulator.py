"""LumaGenerateImageOperator.execute with the real hook against the emulator over HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.exceptions import AirflowFailException

from airflow_provider_luma._submission import STATE_KEY
from airflow_provider_luma.exceptions import LumaGenerationFailedError, LumaSubmissionUnknownError
from airflow_provider_luma.operators.generate import LumaGenerateImageOperator
from airflow_provider_luma.testing import Fault
from tests.fakes import FakeTaskStateStore, make_context

pytestmark = pytest.mark.usefixtures("luma_connection")
FAST = {"initial_wait": 0.1, "poll_interval": 0.05, "timeout": 30, "deferrable": False}


def _operator(**kwargs: Any) -> LumaGenerateImageOperator:
    return LumaGenerateImageOperator(task_id="generate", **{"prompt": "a lighthouse", **FAST, **kwargs})


def test_generate_then_edit_a_stored_file(luma_emulator: Any, tmp_path) -> None:
    store = FakeTaskStateStore()
    first = _operator().execute(make_context(store))
    assert first["state"] == "completed"
    assert store.values[STATE_KEY]["generation_id"] == first["generation_id"]

    with _operator()._hook() as hook, (tmp_path / "in.png").open("wb") as out:
        hook.download_output(first["generation_id"], out)
    edited = _operator(
        type="image_edit", prompt="make it night", source=f"file://{tmp_path / 'in.png'}"
    ).execute(make_context(FakeTaskStateStore()))
    assert edited["state"] == "completed" and edited["type"] == "image_edit"
    assert edited["request"]["source"]["media_type"] in ("image/png", "image/jpeg")
    assert luma_emulator.stats.generations_created == 2


def test_lost_post_answer_fails_without_a_second_post(luma_emulator: Any) -> None:
    luma_emulator.add_fault(Fault(method="POST", kind="drop_after_create"))
    store = FakeTaskStateStore()
    with pytest.raises(AirflowFailException, match="may be billed") as info:
        _operator().execute(make_context(store))
    assert isinstance(info.value.__cause__, LumaSubmissionUnknownError)
    assert luma_emulator.stats.generations_created == 1
    assert luma_emulator.stats.requests["POST /v1/generations"] == 1
    # The write-ahead record stays pending (so no retry POSTs) and says the failure was reported.
    assert store.values[STATE_KEY]["pending"] is True
    assert store.values[STATE_KEY]["request_id"] in str(info.value)


def test_retryable_failure_then_retry_resubmits_once(luma_emulator: Any) -> None:
    luma_emulator.fail_next_generations("generation_failed", count=1)
    store = FakeTaskStateStore()
    with pytest.raises(LumaGenerationFailedError):
        _operator().execute(make_context(store))
    result = _operator().execute(make_context(store))  # Airflow's retry, same store
    assert result["state"] == "completed"
    assert luma_emulator.stats.generations_created == 2


def test_cleared_success_reuses_the_generation(luma_emulator: Any) -> None:
    store = FakeTaskStateStore()
    first = _operator().execute(make_context(store))
    again = _operator().execute(make_context(store))
    assert again["generation_id"] == first["generation_id"]
    assert luma_emulator.stats.generations_created == 1
