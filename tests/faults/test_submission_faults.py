"""
The fault matrix, submission rows: the generate operator against the emulator over real HTTP.

Each row runs one or more tries of the same task against one store, as Airflow would (a retry or a
person's clear only increments the try number), and asserts the outcome of each try AND the emulator's
counters: POSTs received and generations created. A fault may cost at most the one generation it is
allowed; only a person's clear after a final failure may pay again, once.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from airflow.exceptions import AirflowFailException

from airflow_provider_luma._submission import STATE_KEY
from airflow_provider_luma.exceptions import LumaError, LumaGenerationFailedError
from airflow_provider_luma.operators.generate import LumaGenerateImageOperator
from airflow_provider_luma.testing import Fault
from tests.fakes import RETRYABLE_CODES, FakeTaskStateStore, make_context
from tests.support import run_dag

if TYPE_CHECKING:
    from airflow_provider_luma.testing import LumaEmulator

pytestmark = [pytest.mark.usefixtures("luma_connection"), pytest.mark.timeout(120)]

POST = "POST /v1/generations"
DAGS = Path(__file__).resolve().parents[1] / "dags"
FAILURE_CODES = [
    "content_moderated",
    "generation_failed",
    "budget_exhausted",
    "output_not_found",
    "image_too_large",
    "unsupported_format",
    "corrupt_input",
    "invalid_request",
    "rate_limited",
]


def _operator(**kwargs: Any) -> LumaGenerateImageOperator:
    return LumaGenerateImageOperator(
        **{
            "task_id": "generate",
            "prompt": "a lighthouse at dusk",
            "deferrable": False,
            "initial_wait": 0.05,
            "poll_interval": 0.05,
            "timeout": 30,
            **kwargs,
        }
    )


def _try(store: FakeTaskStateStore, try_number: int, *, max_tries: int = 0, **kwargs: Any) -> dict[str, Any]:
    """One try: Airflow's own retry keeps ``max_tries``; a person's clear raises it (no retries here)."""
    return _operator(**kwargs).execute(make_context(store, try_number=try_number, max_tries=max_tries))


def _counts(emulator: LumaEmulator) -> tuple[int, int]:
    """(POSTs received, generations created)."""
    return emulator.stats.requests.get(POST, 0), emulator.stats.generations_created


# --- execution_timeout while the POST waits for its answer ------------------------------------------------


def test_execution_timeout_during_the_post_fails_once_without_a_retry(
    airflow_db: Any, luma_emulator: LumaEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real dag.test() run: Airflow's SIGALRM fires inside the POST; the task has retries left."""
    luma_emulator.add_fault(Fault(method="POST", kind="read_timeout", delay=5))
    state, _, tis = run_dag(monkeypatch, DAGS / "submission_timeout.py", "luma_submission_timeout")
    ti = tis[("generate", -1)]
    assert state == "failed" and ti.state == "failed"
    assert ti.try_number == 1  # AirflowFailException: not one of its two retries was spent
    assert _counts(luma_emulator) == (1, 1)


def test_execution_timeout_then_retry_then_clear(luma_emulator: LumaEmulator) -> None:
    from airflow.sdk.execution_time.timeout import timeout

    luma_emulator.add_fault(Fault(method="POST", kind="read_timeout", delay=5))
    store = FakeTaskStateStore()
    with pytest.raises(AirflowFailException, match="execution_timeout") as info, timeout(1):
        _try(store, 1)
    request_id = store.values[STATE_KEY]["request_id"]
    assert request_id in str(info.value) and "clear the task" in str(info.value)
    assert _counts(luma_emulator) == (1, 1)

    # Had Airflow retried anyway (as after a kill right after the report): its max_tries is the same,
    # so it is no clear, and it does not POST.
    with pytest.raises(AirflowFailException, match=request_id):
        _try(store, 2)
    assert _counts(luma_emulator) == (1, 1)

    # A person's clear after the reported failure raises max_tries: one new generation, on purpose.
    result = _try(store, 3, max_tries=2)
    assert result["state"] == "completed"
    assert _counts(luma_emulator) == (2, 2)
    assert result["request_id"].endswith("-3")


def test_execution_timeout_while_waiting_out_a_429_leaves_the_retry_free_to_post(
    luma_emulator: LumaEmulator,
) -> None:
    """Every answer so far said "nothing was queued": the timeout interrupted no request."""
    from airflow.sdk.execution_time.timeout import timeout

    from airflow_provider_luma._compat import AirflowTaskTimeout

    luma_emulator.add_fault(Fault(method="POST", status=429, rate_limit="concurrency"))
    store = FakeTaskStateStore()
    with pytest.raises(AirflowTaskTimeout), timeout(1):  # the hook was sleeping out Retry-After: 60
        _try(store, 1)
    assert _counts(luma_emulator) == (1, 0)
    assert store.values[STATE_KEY]["pending"] is False
    assert _try(store, 2)["state"] == "completed"  # Airflow's retry
    assert _counts(luma_emulator) == (2, 1)


# --- statuses that prove nothing was queued: one POST, and the next try may POST ----------------------------


@pytest.mark.parametrize("status", [400, 401, 402, 403, 413, 422])
def test_a_refused_post_fails_once_and_a_clear_submits(luma_emulator: LumaEmulator, status: int) -> None:
    luma_emulator.add_fault(Fault(method="POST", status=status))
    store = FakeTaskStateStore()
    with pytest.raises(AirflowFailException, match=f"HTTP {status}"):
        _try(store, 1)
    assert _counts(luma_emulator) == (1, 0)
    assert store.values[STATE_KEY]["pending"] is False
    assert _try(store, 2, max_tries=1)["state"] == "completed"
    assert _counts(luma_emulator) == (2, 1)


# --- every failure code: the documented outcome, then one new generation on the next try -------------------


@pytest.mark.parametrize("code", FAILURE_CODES)
def test_each_failure_code_then_the_next_try(luma_emulator: LumaEmulator, code: str) -> None:
    luma_emulator.fail_next_generations(code, count=1)
    store = FakeTaskStateStore()
    with pytest.raises((LumaError, AirflowFailException)) as info:
        _try(store, 1)
    if code in RETRYABLE_CODES:
        # Raised as is: Airflow spends a retry, and the retry submits anew.
        assert isinstance(info.value, LumaGenerationFailedError) and info.value.retryable
    else:
        # Final: no retry is spent; only a person's clear comes back, and it may pay again.
        assert isinstance(info.value, AirflowFailException)
        assert isinstance(info.value.__cause__, LumaGenerationFailedError)
    assert info.value is not None and code in str(info.value)
    assert _counts(luma_emulator) == (1, 1)

    # Retryable: Airflow's own retry (same max_tries); final: a person's clear (max_tries raised).
    next_max_tries = 0 if code in RETRYABLE_CODES else 1
    assert _try(store, 2, max_tries=next_max_tries)["state"] == "completed"
    assert _counts(luma_emulator) == (2, 2)

    # A third try (a clear after success) reuses the completed generation: nothing more is paid.
    assert _try(store, 3, max_tries=2)["state"] == "completed"
    assert _counts(luma_emulator) == (2, 2)
