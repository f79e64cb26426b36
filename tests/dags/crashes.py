"""Test-only operators whose first try dies right after the POST answered, as a worker crash would."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_luma.operators.luma import LumaGenerateImageOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class SimulatedCrash(BaseException):
    """Not an ``Exception``: like a kill, nothing in the provider may catch and handle it."""


class _DiesOnceRecorded:
    """A task_state_store that raises right after the generation id is stored (try 1 only)."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def get(self, key: str, default: Any = None) -> Any:
        return self._store.get(key, default)

    def set(self, key: str, value: Any, **kwargs: Any) -> None:
        self._store.set(key, value, **kwargs)
        if isinstance(value, dict) and value.get("generation_id"):
            raise SimulatedCrash(f"simulated worker crash after submitting {value['generation_id']}")


class DiesAfterSubmitOnFirstTry(LumaGenerateImageOperator):
    """Test-only: the first try raises just after the generation id was recorded."""

    def execute(self, context: Context) -> Any:
        if context["ti"].try_number == 1:
            context["task_state_store"] = _DiesOnceRecorded(context["task_state_store"])  # type: ignore[typeddict-unknown-key]
        return super().execute(context)
