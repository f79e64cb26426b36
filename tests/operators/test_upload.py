"""
LumaUploadOutputsOperator against the emulator over real HTTP, with real local disk and S3 (moto).

These tests call ``execute`` directly with the few context entries it reads; the ``dag.test()`` runs
(Asset events, mapping) are in ``test_upload_dag.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_luma._compat import AirflowFailException
from airflow_provider_luma.exceptions import LumaError, LumaRequestValidationError
from airflow_provider_luma.operators.luma import LumaUploadOutputsOperator
from airflow_provider_luma.testing import Fault
from tests.operators.test_upload_storage import s3_requests
from tests.support import (
    AWS_CONN_ID,
    BUCKET,
    S3Server,
    completed_generation,
    emulator_bytes,
    task_context,
)


def _upload(generation, destination, **kwargs):
    operator = LumaUploadOutputsOperator(
        task_id="upload", generation=generation, destination=destination, **kwargs
    )
    return operator, operator.execute(task_context())


def _files(folder) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def test_stores_the_image_and_its_metadata_record(luma_emulator, luma_connection, tmp_path):
    result = completed_generation(
        luma_connection, prompt="a red bicycle", aspect_ratio="16:9", output_format="png"
    )
    generation_id = result["generation_id"]

    _, manifest = _upload(result, f"file://{tmp_path}")

    image = tmp_path / f"{generation_id}-0.png"
    stored = image.read_bytes()
    assert stored == emulator_bytes(luma_connection, generation_id)
    assert manifest == {
        "generation_id": generation_id,
        "outputs": [
            {
                "index": 0,
                "layer": None,  # an image is no layer of a layering job
                "uri": f"file://{image}",
                "metadata_uri": f"file://{image}.json",
                "sha256": hashlib.sha256(stored).hexdigest(),
                "size": len(stored),
                "content_type": "image/png",
                "status": "written",
            }
        ],
    }
    record = json.loads((tmp_path / f"{generation_id}-0.png.json").read_text())
    assert record["generation_id"] == generation_id
    assert record["index"] == 0 and record["layer"] is None
    assert (record["model"], record["type"]) == ("uni-1", "image")
    assert record["request"]["prompt"] == "a red bicycle"
    assert record["request"]["aspect_ratio"] == "16:9"
    assert record["request_id"] == result["request_id"]
    assert record["created_at"] == result["created_at"]
    assert (record["sha256"], record["size"], record["content_type"]) == (
        hashlib.sha256(stored).hexdigest(),
        len(stored),
        "image/png",
    )
    assert record["airflow"] == {
        "dag_id": "unit",
        "task_id": "upload",
        "run_id": "manual__1",
        "map_index": -1,
        "try_number": 1,
    }
    # Nothing that leads to a presigned URL: not the emulator's address, not a signature.
    for text in (json.dumps(manifest), json.dumps(record)):
        assert "127.0.0.1" not in text
        assert "X-Amz" not in text
    assert _files(tmp_path) == [f"{generation_id}-0.png", f"{generation_id}-0.png.json"]


def test_jpeg_gets_jpg_and_a_bare_id_gives_a_null_request(luma_emulator, luma_connection, tmp_path):
    result = completed_generation(luma_connection, prompt="a blue kite", output_format="jpeg")
    generation_id = result["generation_id"]

    _, manifest = _upload(generation_id, str(tmp_path), file_name="campaign/{index}-{generation_id}{ext}")

    assert manifest["outputs"][0]["content_type"] == "image/jpeg"
    assert _files(tmp_path) == [f"campaign/0-{generation_id}.jpg", f"campaign/0-{generation_id}.jpg.json"]
    record = json.loads((tmp_path / f"campaign/0-{generation_id}.jpg.json").read_text())
    assert record["request"] is None
    assert record["generation_id"] == generation_id


def test_retry_with_skip_if_identical_downloads_and_writes_nothing(luma_emulator, luma_connection, tmp_path):
    result = completed_generation(luma_connection)
    _upload(result, str(tmp_path))
    image = tmp_path / f"{result['generation_id']}-0.png"
    before = {name: os.stat(tmp_path / name).st_mtime_ns for name in _files(tmp_path)}
    downloads = luma_emulator.stats.requests["GET output"]

    _, manifest = _upload(result, str(tmp_path))

    assert luma_emulator.stats.requests["GET output"] == downloads
    assert {name: os.stat(tmp_path / name).st_mtime_ns for name in _files(tmp_path)} == before
    assert manifest["outputs"][0]["status"] == "skipped"
    assert manifest["outputs"][0]["sha256"] == hashlib.sha256(image.read_bytes()).hexdigest()


def test_skip_if_identical_rewrites_an_image_changed_since(luma_emulator, luma_connection, tmp_path):
    result = completed_generation(luma_connection)
    _upload(result, str(tmp_path))
    image = tmp_path / f"{result['generation_id']}-0.png"
    original = image.read_bytes()
    image.write_bytes(b"tampered")

    _, manifest = _upload(result, str(tmp_path))

    assert manifest["outputs"][0]["status"] == "written"
    assert image.read_bytes() == original


def test_overwrite_downloads_again(luma_emulator, luma_connection, tmp_path):
    result = completed_generation(luma_connection)
    _upload(result, str(tmp_path))
    downloads = luma_emulator.stats.requests["GET output"]

    _, manifest = _upload(result, str(tmp_path), if_exists="overwrite")

    assert luma_emulator.stats.requests["GET output"] == downloads + 1
    assert manifest["outputs"][0]["status"] == "written"


def test_fail_raises_when_another_object_is_there_and_leaves_it(luma_emulator, luma_connection, tmp_path):
    first, second = completed_generation(luma_connection), completed_generation(luma_connection)
    _upload(first, str(tmp_path), file_name="hero{ext}")
    stored = (tmp_path / "hero.png").read_bytes()
    downloads = luma_emulator.stats.requests["GET output"]

    with pytest.raises(AirflowFailException, match=r"hero\.png already exists and if_exists='fail'"):
        _upload(second, str(tmp_path), file_name="hero{ext}", if_exists="fail")

    assert (tmp_path / "hero.png").read_bytes() == stored
    assert json.loads((tmp_path / "hero.png.json").read_text())["generation_id"] == first["generation_id"]
    assert luma_emulator.stats.requests["GET output"] == downloads  # refused before downloading


def test_fail_after_this_tasks_own_success_is_not_a_conflict(luma_emulator, luma_connection, tmp_path):
    result = completed_generation(luma_connection)
    _upload(result, str(tmp_path), if_exists="fail")
    before = {name: os.stat(tmp_path / name).st_mtime_ns for name in _files(tmp_path)}
    downloads = luma_emulator.stats.requests["GET output"]

    _, manifest = _upload(result, str(tmp_path), if_exists="fail")  # the retry of a try that succeeded

    assert manifest["outputs"][0]["status"] == "skipped"
    assert luma_emulator.stats.requests["GET output"] == downloads
    assert {name: os.stat(tmp_path / name).st_mtime_ns for name in _files(tmp_path)} == before


def test_fail_refuses_an_image_whose_record_is_missing(luma_emulator, luma_connection, tmp_path):
    result = completed_generation(luma_connection)
    _upload(result, str(tmp_path))
    (tmp_path / f"{result['generation_id']}-0.png.json").unlink()

    with pytest.raises(AirflowFailException, match="already exists and if_exists='fail'"):
        _upload(result, str(tmp_path), if_exists="fail")
    assert _files(tmp_path) == [f"{result['generation_id']}-0.png"]


def test_fail_is_a_conditional_write_on_s3(luma_emulator, luma_connection, s3: S3Server):
    """Another writer landing between the checks and the write is refused by S3 (If-None-Match: *)."""
    result = completed_generation(luma_connection)
    key = f"luma/{result['generation_id']}-0.png"

    def another_writer_gets_there_first(params, **_):
        if params.get("Key") == key and not s3.keys():
            s3.client.put_object(Bucket=BUCKET, Key=key, Body=b"the other writer's image")

    with (
        s3_requests(on_publish=another_writer_gets_there_first),
        pytest.raises(AirflowFailException, match="already exists and if_exists='fail'"),
    ):
        _upload(result, f"s3://{BUCKET}/luma", destination_conn_id=AWS_CONN_ID, if_exists="fail")

    assert s3.client.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"the other writer's image"
    assert s3.keys() == [key]
    assert s3.pending_multipart_uploads() == []


def test_old_urls_are_never_used(luma_emulator, luma_connection, tmp_path):
    result = completed_generation(luma_connection)
    luma_emulator.expire_output_urls()

    _, manifest = _upload(result, str(tmp_path))

    assert manifest["outputs"][0]["status"] == "written"


def test_an_expired_url_is_refreshed_once(luma_emulator, luma_connection, tmp_path):
    result = completed_generation(luma_connection)
    luma_emulator.add_fault(Fault(method="OUTPUT", status=403, times=1))

    _, manifest = _upload(result, str(tmp_path))

    assert luma_emulator.stats.requests["GET output"] == 2
    stored = (tmp_path / f"{result['generation_id']}-0.png").read_bytes()
    assert manifest["outputs"][0]["sha256"] == hashlib.sha256(stored).hexdigest()


def test_a_url_refused_twice_fails_and_leaves_nothing(luma_emulator, luma_connection, tmp_path):
    result = completed_generation(luma_connection)
    luma_emulator.add_fault(Fault(method="OUTPUT", status=403, times=2))

    with pytest.raises(AirflowFailException, match="refused"):
        _upload(result, str(tmp_path))
    assert _files(tmp_path) == []


def test_download_dying_half_way_leaves_nothing_locally(luma_emulator, luma_connection, tmp_path):
    result = completed_generation(luma_connection)
    luma_emulator.add_fault(Fault(method="OUTPUT", kind="drop_midway"))

    with pytest.raises(LumaError):
        _upload(result, str(tmp_path))

    assert _files(tmp_path) == []


def test_failed_generation_is_a_clear_error(luma_emulator, luma_connection, tmp_path):
    from airflow_provider_luma.hooks.luma import LumaHook
    from airflow_provider_luma.models import GenerationRequest

    with LumaHook(luma_conn_id=luma_connection) as hook:
        generation = hook.create_generation(GenerationRequest.build(prompt="anything"))
    luma_emulator.set_state(generation.id, "failed", failure_code="content_moderated")

    with pytest.raises(AirflowFailException, match=rf"{generation.id} has no output.*content_moderated"):
        _upload(generation.id, str(tmp_path))
    assert _files(tmp_path) == []
    assert luma_emulator.stats.requests["GET output"] == 0


def test_unfinished_generation_is_a_clear_error(luma_emulator, luma_connection, tmp_path):
    luma_emulator.configure(queued_seconds=60)
    from airflow_provider_luma.hooks.luma import LumaHook
    from airflow_provider_luma.models import GenerationRequest

    with LumaHook(luma_conn_id=luma_connection) as hook:
        generation = hook.create_generation(GenerationRequest.build(prompt="anything"))

    with pytest.raises(LumaError, match=rf"{generation.id} has no output.*state queued") as caught:
        _upload({"generation_id": generation.id}, str(tmp_path))
    assert caught.value.retryable  # Airflow retries: the generation will finish
    assert _files(tmp_path) == []


def test_s3_upload_and_retry(luma_emulator, luma_connection, s3: S3Server):
    result = completed_generation(luma_connection)
    generation_id = result["generation_id"]
    destination = ObjectStoragePath(f"s3://{BUCKET}/luma/run-1", conn_id=AWS_CONN_ID)

    _, manifest = _upload(result, destination)

    key = f"luma/run-1/{generation_id}-0.png"
    assert s3.keys() == [key, f"{key}.json"]
    stored = s3.client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert stored == emulator_bytes(luma_connection, generation_id)
    assert manifest["outputs"][0]["uri"] == f"s3://{BUCKET}/{key}"
    record = json.loads(s3.client.get_object(Bucket=BUCKET, Key=f"{key}.json")["Body"].read())
    assert record["sha256"] == hashlib.sha256(stored).hexdigest()
    etag = s3.client.head_object(Bucket=BUCKET, Key=key)["ETag"]
    downloads = luma_emulator.stats.requests["GET output"]

    _, again = _upload(result, destination)

    assert again["outputs"][0]["status"] == "skipped"
    assert luma_emulator.stats.requests["GET output"] == downloads
    assert s3.client.head_object(Bucket=BUCKET, Key=key)["ETag"] == etag


def test_s3_download_dying_half_way_leaves_nothing(luma_emulator, luma_connection, s3: S3Server):
    result = completed_generation(luma_connection)
    luma_emulator.add_fault(Fault(method="OUTPUT", kind="drop_midway"))

    with pytest.raises(LumaError):
        _upload(result, f"s3://{BUCKET}/luma", destination_conn_id=AWS_CONN_ID)

    assert s3.keys() == []
    assert s3.pending_multipart_uploads() == []


def test_config_default_destination(luma_emulator, luma_connection, s3: S3Server, monkeypatch):
    monkeypatch.setenv("AIRFLOW__LUMA__OUTPUT_PATH", f"s3://{BUCKET}/configured")
    monkeypatch.setenv("AIRFLOW__LUMA__OUTPUT_CONN_ID", AWS_CONN_ID)
    result = completed_generation(luma_connection)

    _upload(result, None)

    assert s3.keys() == [
        f"configured/{result['generation_id']}-0.png",
        f"configured/{result['generation_id']}-0.png.json",
    ]


def test_openlineage_facets_after_a_run(luma_emulator, luma_connection, tmp_path):
    source_id = completed_generation(luma_connection, prompt="a plain mug")["generation_id"]
    result = completed_generation(
        luma_connection,
        prompt="the mug in red",
        type="image_edit",
        source=source_id,
        image_ref=["https://cdn.example.com/brand/palette.png"],
    )
    operator, _ = _upload(result, str(tmp_path))

    lineage = operator.get_openlineage_facets_on_complete(task_instance=None)

    assert [(d.namespace, d.name) for d in lineage.inputs] == [
        ("luma", f"generations/{result['generation_id']}"),
        ("luma", f"generations/{source_id}"),
        ("https://cdn.example.com", "/brand/palette.png"),
    ]
    assert [(d.namespace, d.name) for d in lineage.outputs] == [
        ("file", str(tmp_path / f"{result['generation_id']}-0.png"))
    ]
    facet = lineage.run_facets["luma_generation"]
    assert (facet.generation_id, facet.model, facet.type) == (result["generation_id"], "uni-1", "image_edit")
    assert facet.prompt_sha256 == hashlib.sha256(b"the mug in red").hexdigest()


def test_works_without_openlineage(luma_emulator, luma_connection, tmp_path, monkeypatch):
    blocked = ("airflow.providers.openlineage", "openlineage")
    for name in [name for name in sys.modules if name.startswith(blocked)]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "airflow.providers.openlineage", None)
    monkeypatch.setitem(sys.modules, "openlineage", None)
    result = completed_generation(luma_connection)

    operator, manifest = _upload(result, str(tmp_path))

    assert manifest["outputs"][0]["status"] == "written"
    assert operator.get_openlineage_facets_on_complete(task_instance=None) is None


# ---------------------------------------------------------------------------- containment


@pytest.mark.parametrize(
    ("file_name", "problem"),
    [
        ("../{generation_id}{ext}", "'..' segment"),
        ("/etc/{generation_id}{ext}", "absolute path"),
        ("a/../../{generation_id}{ext}", "'..' segment"),
        ("a//{generation_id}{ext}", "empty"),
        ("a\\{generation_id}{ext}", "backslash"),
        ("{generation_id}/{owner}{ext}", "unknown fields"),
    ],
)
def test_a_literal_file_name_that_could_leave_the_destination_fails_the_dag_import(file_name, problem):
    with pytest.raises(LumaRequestValidationError, match=rf"^file_name: .*{re.escape(problem)}"):
        LumaUploadOutputsOperator(task_id="upload", generation="x", destination="/data", file_name=file_name)


def test_a_rendered_file_name_is_checked_before_anything_is_read_or_written(
    luma_emulator, luma_connection, tmp_path
):
    result = completed_generation(luma_connection)
    destination = tmp_path / "images"
    operator = LumaUploadOutputsOperator(
        task_id="upload",
        generation=result,
        destination=str(destination),
        file_name="{{ folder }}/{index}{ext}",
    )
    context = {**task_context(), "folder": ".."}
    operator.render_template_fields(context)
    assert operator.file_name == "../{index}{ext}"

    with pytest.raises(AirflowFailException, match=r"file_name: '\.\./\{index\}\{ext\}' has an empty"):
        operator.execute(context)

    assert list(tmp_path.iterdir()) == []
    assert luma_emulator.stats.requests["GET output"] == 0


def test_a_symbolic_link_in_the_destination_cannot_lead_the_write_outside(
    luma_emulator, luma_connection, tmp_path
):
    result = completed_generation(luma_connection)
    destination, elsewhere = tmp_path / "images", tmp_path / "elsewhere"
    destination.mkdir()
    elsewhere.mkdir()
    (destination / "campaign").symlink_to(elsewhere)

    with pytest.raises(AirflowFailException, match=r"file_name: .*outside the destination"):
        _upload(result, str(destination), file_name="campaign/{generation_id}{ext}")

    assert list(elsewhere.iterdir()) == []
    assert luma_emulator.stats.requests["GET output"] == 0


def test_an_answer_about_another_generation_does_not_choose_the_path(
    luma_emulator, luma_connection, tmp_path, monkeypatch
):
    from airflow_provider_luma.hooks.luma import LumaHook

    asked, other = completed_generation(luma_connection), completed_generation(luma_connection)
    get_generation = LumaHook.get_generation
    monkeypatch.setattr(
        LumaHook, "get_generation", lambda self, _: get_generation(self, other["generation_id"])
    )

    with pytest.raises(AirflowFailException, match=rf"asked for generation {asked['generation_id']}"):
        _upload(asked, str(tmp_path))

    assert _files(tmp_path) == []
    assert luma_emulator.stats.requests["GET output"] == 0


# ---------------------------------------------------------------------------- image and record agree


def _records_describe_their_images(folder) -> None:
    for record_file in folder.rglob("*.json"):
        record = json.loads(record_file.read_text())
        image = record_file.with_name(record_file.name.removesuffix(".json")).read_bytes()
        assert (record["sha256"], record["size"]) == (hashlib.sha256(image).hexdigest(), len(image))


def test_overwrite_removes_the_old_record_before_replacing_the_image(
    luma_emulator, luma_connection, tmp_path, monkeypatch
):
    first, second = completed_generation(luma_connection), completed_generation(luma_connection)
    _upload(first, str(tmp_path), file_name="hero{ext}")
    replace = os.replace

    def disk_full_for_records(source, destination):
        if str(destination).endswith(".json"):
            raise OSError(28, "No space left on device")
        replace(source, destination)

    monkeypatch.setattr(os, "replace", disk_full_for_records)

    with pytest.raises(OSError, match="No space left"):
        _upload(second, str(tmp_path), file_name="hero{ext}", if_exists="overwrite")

    # The new image is there without a record: never the old record next to the new bytes.
    assert _files(tmp_path) == ["hero.png"]
    assert (tmp_path / "hero.png").read_bytes() == emulator_bytes(luma_connection, second["generation_id"])


def test_a_mapped_upload_without_generation_id_in_its_name_warns_once(
    luma_emulator, luma_connection, tmp_path, capsys
):
    result = completed_generation(luma_connection)
    mapped = task_context()
    mapped["ti"].map_index = 0

    for file_name in ("{generation_id}{ext}", "hero{ext}"):
        operator = LumaUploadOutputsOperator(
            task_id="upload", generation=result, destination=str(tmp_path), file_name=file_name
        )
        operator.execute(mapped)

    warnings = [line for line in capsys.readouterr().out.splitlines() if "has no {generation_id}" in line]
    assert len(warnings) == 1
    assert "warning" in warnings[0] and "'hero{ext}'" in warnings[0]
    _records_describe_their_images(tmp_path)


def test_s3_record_is_one_put_and_the_image_one_put_when_small(luma_emulator, luma_connection, s3: S3Server):
    result = completed_generation(luma_connection)
    key = f"luma/{result['generation_id']}-0.png"

    with s3_requests() as calls:
        _upload(result, f"s3://{BUCKET}/luma", destination_conn_id=AWS_CONN_ID)

    writes = [call for call in calls if call[0] not in ("HeadObject", "GetObject", "ListObjectsV2")]
    assert writes == [("DeleteObject", f"{key}.json"), ("PutObject", key), ("PutObject", f"{key}.json")]
