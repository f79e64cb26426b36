"""
The generation's estimated cost in everything an upload leaves for spend accounting: the metadata
record beside each image, the Asset events and the ``luma_generation`` OpenLineage facet.

Like ``test_upload.py``, these call ``execute`` directly against the emulator; the context holds
Airflow's own outlet event accessors, so the Asset extras are the ones a task run would store.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from airflow.sdk import Asset, AssetAlias
from airflow.sdk.execution_time.context import OutletEventAccessors

from airflow_provider_luma.operators.luma import LumaUploadOutputsOperator
from tests.support import completed_generation, task_context

IMAGES = Asset("luma_cost_images")
OUTPUTS = AssetAlias("luma_cost_outputs")
REFERENCES = [f"https://cdn.example.com/brand/ref-{n}.png" for n in range(3)]


def _costs_after_upload(generation: Any, folder) -> list[float | None]:
    """The cost each place holds: every record, the declared Asset, every aliased Asset, the facet."""
    operator = LumaUploadOutputsOperator(
        task_id="upload", generation=generation, destination=str(folder), outlets=[IMAGES, OUTPUTS]
    )
    outlet_events = OutletEventAccessors()
    operator.execute({**task_context(), "outlet_events": outlet_events})

    records = [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]
    aliased = outlet_events[OUTPUTS].asset_alias_events
    facet = operator.get_openlineage_facets_on_complete(task_instance=None).run_facets["luma_generation"]
    assert records and len(aliased) == len(records)
    return [
        *(record["estimated_cost_usd"] for record in records),
        outlet_events[IMAGES].extra["luma_estimated_cost_usd"],
        *(event.extra["luma_estimated_cost_usd"] for event in aliased),
        facet.estimated_cost_usd,
    ]


def test_the_upstream_results_cost_is_carried(luma_emulator, luma_connection, tmp_path):
    result = completed_generation(luma_connection, prompt="a red bicycle")
    # A figure the price table would not give: the upload must pass the generate task's on, not redo it.
    result["estimated_cost_usd"] = 0.0521

    assert set(_costs_after_upload(result, tmp_path)) == {0.0521}


@pytest.mark.parametrize(
    ("fields", "cost"),
    [
        ({}, 0.0404),  # uni-1, text to image
        ({"model": "uni-1-max", "image_ref": REFERENCES}, 0.1030 + 2 * 0.0030),
    ],
)
def test_a_described_request_without_a_figure_is_priced_from_the_table(
    luma_emulator, luma_connection, tmp_path, fields: dict[str, Any], cost: float
):
    result = completed_generation(luma_connection, prompt="a blue kite", **fields)
    del result["estimated_cost_usd"]

    costs = _costs_after_upload(result, tmp_path)
    assert costs == pytest.approx([cost] * len(costs))


def test_a_bare_id_has_no_cost(luma_emulator, luma_connection, tmp_path):
    generation_id = completed_generation(luma_connection, prompt="a green kite")["generation_id"]

    assert set(_costs_after_upload(generation_id, tmp_path)) == {None}
