"""A ``file_name`` whose format spec or conversion does not fit fails the DAG import, naming the field."""

from __future__ import annotations

import pytest

from airflow_provider_luma.exceptions import LumaRequestValidationError
from airflow_provider_luma.operators.luma import LumaUploadOutputsOperator
from airflow_provider_luma.uploads.naming import check_file_name, object_name


@pytest.mark.parametrize(
    "pattern",
    [
        "{generation_id}/{layer:02d}{ext}",
        "{index:.0}{ext}",
        "{generation_id}-{layer!r}{ext}",
        "{index:/>4}{ext}",
    ],
    ids=["int-spec-on-a-layer", "precision-on-the-index", "repr-conversion", "spec-writing-a-slash"],
)
def test_a_pattern_that_cannot_be_filled_in_fails_at_parse(pattern: str) -> None:
    with pytest.raises(LumaRequestValidationError) as raised:
        check_file_name(pattern)
    assert raised.value.field == "file_name"

    with pytest.raises(Exception, match="file_name"):
        LumaUploadOutputsOperator(task_id="upload", generation="x", destination="/tmp", file_name=pattern)


@pytest.mark.parametrize("pattern", ["{generation_id}/{layer}{ext}", "{index:03d}-{generation_id:.8}{ext}"])
def test_specs_that_fit_still_pass(pattern: str) -> None:
    check_file_name(pattern)
    assert object_name(pattern, "d290f1ee-6c54-4b01-90e6-d701748f0851", 2, ".png").endswith(".png")
