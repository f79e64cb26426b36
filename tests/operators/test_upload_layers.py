"""
LumaUploadOutputsOperator on a layering job: one object per layer, each named, recorded and listed as
the layer it is. Against the emulator (whose layering job gives RGBA PNG layers) over real HTTP.
"""

from __future__ import annotations

import hashlib
import json
import struct

import pytest

from airflow_provider_luma._compat import AirflowFailException
from airflow_provider_luma.exceptions import LumaRequestValidationError
from airflow_provider_luma.models import Layer
from airflow_provider_luma.operators.luma import LumaUploadOutputsOperator
from airflow_provider_luma.uploads import layer_name, object_name
from tests.support import completed_generation, task_context

SOURCE = "https://cdn.example.com/poster.png"


def _layering_job(luma_connection):
    return completed_generation(luma_connection, prompt=None, type="layering", source=SOURCE)


def _upload(generation, destination, **kwargs):
    operator = LumaUploadOutputsOperator(
        task_id="upload", generation=generation, destination=destination, **kwargs
    )
    return operator.execute(task_context())


def _files(folder) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def _png_colour_type(data: bytes) -> int:
    """The IHDR colour type of a PNG: 6 is RGBA."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">B", data[25:26])[0]


def test_every_layer_is_stored_under_its_own_name_with_a_record_of_which_layer_it_is(
    luma_emulator, luma_connection, tmp_path
):
    result = _layering_job(luma_connection)
    generation_id, layers = result["generation_id"], result["layers"]
    assert len(layers) == result["output_count"] >= 2 and layers[-1]["alpha_hint"] == "none"

    manifest = _upload(result, str(tmp_path), file_name="{generation_id}/{layer}{ext}")

    names = [layer_name(layer["output_index"], Layer.from_json(layer)) for layer in layers]
    assert names[-1] == f"{len(layers) - 1:02d}-background"
    assert _files(tmp_path) == sorted(
        f"{generation_id}/{name}.png{suffix}" for name in names for suffix in ("", ".json")
    )
    for entry, layer, name in zip(manifest["outputs"], layers, names, strict=True):
        summary_layer = {key: value for key, value in layer.items() if key != "output_index"}
        assert entry["layer"] == summary_layer and entry["index"] == layer["output_index"]
        image = tmp_path / generation_id / f"{name}.png"
        record = json.loads((tmp_path / generation_id / f"{name}.png.json").read_text())
        # Each record describes the bytes beside it: its own layer, index, digest and size.
        stored = image.read_bytes()
        assert record["layer"] == summary_layer and record["index"] == entry["index"]
        assert (record["sha256"], record["size"]) == (hashlib.sha256(stored).hexdigest(), len(stored))
        assert record["uri"] == entry["uri"] == f"file://{image}"
        assert _png_colour_type(stored) == 6  # a layer keeps its transparency
        # No published price for layering: no figure rather than a guess.
        assert record["estimated_cost_usd"] is None
    digests = {entry["sha256"] for entry in manifest["outputs"]}
    assert len(digests) == len(layers)  # distinct layers, not one image written several times


def test_the_default_name_already_tells_the_layers_apart_by_index(luma_emulator, luma_connection, tmp_path):
    result = _layering_job(luma_connection)
    generation_id = result["generation_id"]

    manifest = _upload(result, str(tmp_path))

    count = result["output_count"]
    assert [entry["index"] for entry in manifest["outputs"]] == list(range(count))
    assert _files(tmp_path) == sorted(
        f"{generation_id}-{index}.png{suffix}" for index in range(count) for suffix in ("", ".json")
    )
    assert [entry["layer"]["index"] for entry in manifest["outputs"]] == list(range(count))


def test_a_retry_skips_every_finished_layer_and_still_lists_its_layer(
    luma_emulator, luma_connection, tmp_path
):
    result = _layering_job(luma_connection)
    first = _upload(result, str(tmp_path), file_name="{layer}{ext}")
    downloads = luma_emulator.stats.requests["GET output"]

    again = _upload(result, str(tmp_path), file_name="{layer}{ext}")

    assert luma_emulator.stats.requests["GET output"] == downloads
    assert [entry["status"] for entry in again["outputs"]] == ["skipped"] * result["output_count"]
    assert [entry["layer"] for entry in again["outputs"]] == [entry["layer"] for entry in first["outputs"]]


@pytest.mark.parametrize(
    "file_name", ["{generation_id}{ext}", "luma/{generation_id:.8}{ext}", "{layer:.1}{ext}"]
)
def test_a_name_shared_by_two_layers_fails_before_anything_is_read_or_written(
    luma_emulator, luma_connection, tmp_path, file_name
):
    result = _layering_job(luma_connection)
    downloads = luma_emulator.stats.requests["GET output"]

    with pytest.raises(AirflowFailException) as refused:  # not retried: the pattern will not change
        LumaUploadOutputsOperator(
            task_id="upload", generation=result, destination=str(tmp_path), file_name=file_name
        ).execute(task_context())

    cause = refused.value.__cause__
    assert isinstance(cause, LumaRequestValidationError) and cause.field == "file_name"
    assert "names outputs 0 and 1" in str(cause) and "use {index} or {layer}" in str(cause)
    assert luma_emulator.stats.requests["GET output"] == downloads
    assert _files(tmp_path) == []


def test_an_image_without_layers_names_layer_by_its_index(luma_emulator, luma_connection, tmp_path):
    result = completed_generation(luma_connection, prompt="a red kite")

    manifest = _upload(result, str(tmp_path), file_name="{generation_id}/{layer}{ext}")

    assert _files(tmp_path) == [f"{result['generation_id']}/00.png", f"{result['generation_id']}/00.png.json"]
    assert manifest["outputs"][0]["layer"] is None
    assert json.loads((tmp_path / result["generation_id"] / "00.png.json").read_text())["layer"] is None


# ----------------------------------------------------------------------------------- the name


@pytest.mark.parametrize(
    ("index", "label", "name"),
    [
        (2, "background", "02-background"),
        (0, "Hair & Fur", "00-hair-fur"),
        (1, "Café table", "01-cafe-table"),
        (3, "../../etc/passwd", "03-etc-passwd"),
        (4, "a\\b/c", "04-a-b-c"),
        (5, "日本", "05"),  # nothing of it is ASCII: the index alone
        (6, "", "06"),
        (12, "x" * 100, "12-" + "x" * 40),
        (7, "---dots...", "07-dots"),
    ],
)
def test_the_layer_field_is_the_index_and_a_safe_slug_of_the_label(index, label, name):
    assert layer_name(index, Layer(index, label)) == name


def test_the_layer_field_of_an_output_without_a_layer_is_never_empty():
    assert layer_name(0, None) == "00"


def test_a_hostile_label_cannot_move_the_object(tmp_path):
    hostile = Layer(0, "../../../../tmp/evil", "", "soft")
    name = object_name(
        "{generation_id}/{layer}{ext}", "d290f1ee-6c54-4b01-90e6-d701748f0851", 0, ".png", hostile
    )
    assert name == "d290f1ee-6c54-4b01-90e6-d701748f0851/00-tmp-evil.png"
