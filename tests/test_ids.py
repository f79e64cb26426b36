"""Ids in either case name one object: one fingerprint, one path, and answers in lowercase match them."""

from __future__ import annotations

from typing import Any

from airflow_provider_luma import polling
from airflow_provider_luma.hooks.luma import LumaHook
from airflow_provider_luma.models import GenerationRequest, ImageRef
from airflow_provider_luma.operators.luma import LumaUploadOutputsOperator
from tests.support import completed_generation, task_context

ID = "d290f1ee-6c54-4b01-90e6-d701748f0851"


def test_a_reference_keeps_one_spelling_of_its_id() -> None:
    upper = GenerationRequest.build(
        prompt="x", type="image_edit", source=ID.upper(), image_ref=[{"file_id": ID.upper()}]
    )
    lower = GenerationRequest.build(prompt="x", type="image_edit", source=ID, image_ref=[{"file_id": ID}])

    assert upper.source == ImageRef(generation_id=ID)
    assert upper.image_ref[0].file_id == ID
    assert upper.fingerprint() == lower.fingerprint()


def test_an_upload_and_a_wait_given_an_uppercase_id_match_the_apis_answer(
    luma_emulator: Any, luma_connection: str, tmp_path: Any
) -> None:
    generation_id = completed_generation(luma_connection)["generation_id"]
    with LumaHook(luma_conn_id=luma_connection) as hook:
        plan = polling.PollPlan.starting_now(
            generation_id.upper(), timeout=5, initial_wait=0, poll_interval=0.1
        )
        outcome = polling.wait_for_generation(hook.get_generation, plan)
    assert (
        polling.summary_or_raise(outcome.payload(), generation_id.upper())["generation_id"] == generation_id
    )

    operator = LumaUploadOutputsOperator(
        task_id="upload", generation=generation_id.upper(), destination=str(tmp_path)
    )
    [stored] = operator.execute(task_context())["outputs"]
    assert generation_id in stored["uri"]
