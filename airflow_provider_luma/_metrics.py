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

import logging
from typing import Any

log = logging.getLogger(__name__)


def _stats() -> Any:
    try:
        from airflow.sdk.observability.stats import Stats
    except ImportError:  # Airflow < 3.2
        from airflow.stats import Stats  # type: ignore[no-redef]
    return Stats


def _incr(stat: str, count: int = 1, **tags: str) -> None:
    """One counter; a metrics backend that fails (a StatsD host that does not resolve) fails no task."""
    try:
        _stats().incr(stat, count, tags=tags)
    except Exception:
        log.debug("Could not send the metric %s", stat, exc_info=True)


def submitted(model: str, generation_type: str, estimated_cost_usd: float | None) -> None:
    """One submission, and its list price when Luma publishes one (none for layering)."""
    _incr("luma.generation.submitted", model=model, type=generation_type)
    if estimated_cost_usd is not None:
        _incr("luma.estimated_spend_microusd", round(estimated_cost_usd * 1_000_000), model=model)


def reused(model: str) -> None:
    _incr("luma.generation.reused", model=model)


def failed(code: str) -> None:
    _incr("luma.generation.failed", code=code)
