"""
The provider's Airflow metrics, through Airflow's ``Stats`` (so StatsD and OpenTelemetry users see them).

| metric | kind | tags |
|---|---|---|
| ``luma.generation.submitted`` | counter | ``model``, ``type`` |
| ``luma.generation.reused`` | counter (a try reattached instead of paying again) | ``model`` |
| ``luma.generation.failed`` | counter (a task failed on it) | ``code``: ``failure_code``, ``run_budget`` |
| ``luma.estimated_spend_microusd`` | counter, millionths of a USD (counters are integers) | ``model`` |

Airflow's ``Stats`` is a no-op unless metrics are configured, and is imported only when a metric is
sent: a DAG file that imports the operators does not pay for it.
"""

from __future__ import annotations

from typing import Any


def _stats() -> Any:
    try:
        from airflow.sdk.observability.stats import Stats
    except ImportError:  # Airflow < 3.2
        from airflow.stats import Stats  # type: ignore[no-redef]
    return Stats


def submitted(model: str, generation_type: str, estimated_cost_usd: float) -> None:
    stats = _stats()
    stats.incr("luma.generation.submitted", tags={"model": model, "type": generation_type})
    stats.incr("luma.estimated_spend_microusd", round(estimated_cost_usd * 1_000_000), tags={"model": model})


def reused(model: str) -> None:
    _stats().incr("luma.generation.reused", tags={"model": model})


def failed(code: str) -> None:
    _stats().incr("luma.generation.failed", tags={"code": code})
