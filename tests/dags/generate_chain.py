"""
Generate, then edit the result by its generation id, then a mapped fan-out, then a sensor:
one DAG per waiting mode (``deferrable`` or worker polling), run with ``dag.test()`` against the emulator.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_luma.operators.luma import LumaGenerateImageOperator
from airflow_provider_luma.sensors.luma import LumaGenerationSensor

#: Fast timings for the emulator (a generation there completes in about 0.15 s).
FAST = {"initial_wait": 0.1, "poll_interval": 0.05, "timeout": 60}

for _mode, _deferrable in (("deferrable", True), ("worker", False)):
    with DAG(
        dag_id=f"luma_generate_chain_{_mode}",
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        tags=["luma", "test"],
    ):
        generate = LumaGenerateImageOperator(
            task_id="generate",
            prompt="a lighthouse at dusk, {{ params.style_hint }}",
            aspect_ratio="16:9",
            deferrable=_deferrable,
            params={"style_hint": "oil painting"},
            **FAST,
        )
        edit = LumaGenerateImageOperator(
            task_id="edit",
            type="image_edit",
            prompt="make it night",
            source=generate.output["generation_id"],
            deferrable=_deferrable,
            **FAST,
        )
        variants = LumaGenerateImageOperator.partial(
            task_id="variants", aspect_ratio="1:1", deferrable=_deferrable, **FAST
        ).expand(prompt=["a red fox", "a blue whale", "a green parrot"])
        submit_only = LumaGenerateImageOperator(
            task_id="submit_only", prompt="a quiet harbour", wait_for_completion=False
        )
        wait = LumaGenerationSensor(
            task_id="wait",
            generation_id=submit_only.output["generation_id"],
            deferrable=_deferrable,
            poke_interval=0.05,
            timeout=60,
        )
        generate >> edit
