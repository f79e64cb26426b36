"""``LumaRunSpendOperator``: what a DAG run's Luma generate tasks spent, as a task of the run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_luma.spend import luma_task_ids, read_run_spend, spend_report

if TYPE_CHECKING:
    from airflow.sdk import Context


class LumaRunSpendOperator(BaseOperator):
    """
    Report the estimated spend of every ``LumaGenerateImageOperator`` task of this DAG run.

    It reads what each generate task instance published (``luma_spend``: every submission of every
    try and map index, abandoned and unknown-fate ones included), logs a table and returns
    :func:`~airflow_provider_luma.spend.spend_report`: ``estimated_cost_usd``, ``submissions``,
    ``abandoned``, ``fate_unknown``, ``by_task``, ``by_model``, and ``unpriced``, ``unpriced_by_task``
    and ``note`` for submissions Luma publishes no price for (layering jobs: in no sum, and named in a
    warning). Figures are list prices (Luma refunds some failures). Put it downstream of the generate
    tasks; it runs whatever they did.

    :param trigger_rule: when to run; ``all_done`` by default, so that a run with failed (or
        budget-refused) tasks still reports what it spent.
    """

    ui_color = "#f0e4ff"

    def __init__(self, *, trigger_rule: str = "all_done", **kwargs: Any) -> None:
        super().__init__(trigger_rule=trigger_rule, **kwargs)

    def execute(self, context: Context) -> dict[str, Any]:
        report = spend_report(read_run_spend(context["ti"], luma_task_ids(context["dag"])))
        self.log.info(
            "This run's Luma spend (estimated, list prices): %.4f USD over %d submission(s), %d abandoned, "
            "%d of unknown fate",
            report["estimated_cost_usd"],
            report["submissions"],
            report["abandoned"],
            report["fate_unknown"],
        )
        for kind in ("by_task", "by_model"):
            for name, usd in report[kind].items():
                self.log.info("  %s %-40s %10.4f USD", kind.removeprefix("by_"), name, usd)
        if report["note"]:
            self.log.warning("%s", report["note"])
        return report
