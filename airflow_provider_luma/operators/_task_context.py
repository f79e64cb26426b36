"""
What a generate task reads from its Airflow context: its submission record, what it published, the
run's budget and its cap, and the request id that names it.

Kept apart from the operator so that the operator reads as its flow (validate, reattach or submit,
wait, report), and these small lookups stay testable one by one.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from airflow_provider_luma._compat import conf
from airflow_provider_luma._submission import SubmissionLedger, request_id_for
from airflow_provider_luma.exceptions import LumaRequestValidationError
from airflow_provider_luma.spend import (
    SPEND_XCOM_KEY,
    RunBudget,
    SpendEntry,
    TaskSpend,
    luma_task_ids,
    read_run_spend,
)

if TYPE_CHECKING:
    from airflow.sdk import Context


#: What a task sets ``max_run_cost_usd`` to for no cap of its own, whatever the deployment's.
NO_CAP = "none"


def run_cap(value: Any) -> float | None:
    """
    The run's cap in USD: the task's, else ``[luma] max_run_cost_usd``; ``None`` is no cap, for a
    task left unset under no option, or set to ``"none"`` (the way out of a deployment's cap for a
    request it cannot price, such as a layering job).
    """
    if value is None or value == "":
        value = conf.get("luma", "max_run_cost_usd", fallback="") or None
        if value is None:
            return None
    if isinstance(value, str) and value.strip().lower() == NO_CAP:
        return None
    try:
        cap = float(value)
    except (TypeError, ValueError):
        cap = math.nan
    if not math.isfinite(cap) or cap < 0 or isinstance(value, bool):
        raise LumaRequestValidationError(
            "max_run_cost_usd",
            f"must be a number of USD, 0 or more, 'none' for no cap, or unset (got {value!r})",
        )
    return cap


def task_map_index(ti: Any) -> int:
    return ti.map_index if ti.map_index is not None else -1


def ledger_of(context: Context, log: Any) -> SubmissionLedger:
    """This task instance's submission record (per map index), and whether a person cleared it."""
    ti = context["ti"]

    def publish(entries: list[SpendEntry]) -> None:
        spend = TaskSpend(ti.task_id, task_map_index(ti), tuple(entries))
        ti.xcom_push(key=SPEND_XCOM_KEY, value=spend.to_json())

    return SubmissionLedger(
        context.get("task_state_store"),
        log,
        max_tries=getattr(ti, "max_tries", None),
        try_number=getattr(ti, "try_number", None),
        publish=publish,
    )


def published_this_try(context: Context, generation_id: str) -> bool:
    """
    Whether this try submitted ``generation_id``, without a submission record (Airflow < 3.3).

    Airflow clears a task's XComs when a try starts, not when it resumes from a deferral: a
    submission in this task instance's own ``luma_spend`` was published by this try.
    """
    ti = context["ti"]
    published = read_run_spend(ti, [ti.task_id], map_index=task_map_index(ti))
    return any(entry.generation_id == generation_id for spend in published for entry in spend.entries)


def run_budget(context: Context, cap_usd: float, log: Any) -> RunBudget:
    """The run's budget as this task instance sees it: every generate task of the DAG, all map indexes."""
    ti = context["ti"]
    task_ids = luma_task_ids(context["dag"])
    label = TaskSpend(ti.task_id, task_map_index(ti), ()).label
    return RunBudget(cap_usd, lambda: read_run_spend(ti, task_ids), task_label=label, log=log)


def submission_request_id(context: Context) -> str:
    """This try's ``X-Request-Id``, naming the task so that a charge can be matched to it."""
    ti = context["ti"]
    return request_id_for(ti.dag_id, ti.run_id, ti.task_id, task_map_index(ti), ti.try_number)
