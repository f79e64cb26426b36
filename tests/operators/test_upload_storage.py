"""The all-or-nothing write, destination resolution and input checks, on real local disk and S3 (moto)."""

from __future__ import annotations

import hashlib
import io
import os

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_luma import storage
from airflow_provider_luma.exceptions import LumaConfigurationError, LumaRequestValidationError
from airflow_provider_luma.operators.upload import LumaUploadOutputsOperator, _parse_generation
from airflow_provider_luma.storage import conn_id_of, publish
from tests.support import AWS_CONN_ID, BUCKET, S3Server

MIB = 1024 * 1024


class DiesMidway(io.RawIOBase):
    """A source that yields ``fail_after`` bytes and then fails like a dropped connection."""

    def __init__(self, fail_after: int) -> None:
        self.remaining = fail_after

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        if self.remaining <= 0:
            raise ConnectionError("connection dropped")
        count = min(len(buffer), self.remaining)
        buffer[:count] = b"x" * count
        self.remaining -= count
        return count


def test_local_publish_writes_whole_file_and_leaves_no_temporary(tmp_path):
    data = os.urandom(3 * MIB + 17)
    target = ObjectStoragePath(f"file://{tmp_path}/sub/dir/a.png")

    assert publish(io.BytesIO(data), target) == len(data)

    assert (tmp_path / "sub/dir/a.png").read_bytes() == data
    assert os.listdir(tmp_path / "sub/dir") == ["a.png"]


def test_local_publish_that_fails_leaves_nothing_and_keeps_the_old_file(tmp_path):
    target = ObjectStoragePath(f"file://{tmp_path}/a.png")
    (tmp_path / "a.png").write_bytes(b"old image")

    with pytest.raises(ConnectionError):
        publish(io.BufferedReader(DiesMidway(2 * MIB)), target)

    assert (tmp_path / "a.png").read_bytes() == b"old image"
    assert os.listdir(tmp_path) == ["a.png"]

    with pytest.raises(ConnectionError):
        publish(io.BufferedReader(DiesMidway(2 * MIB)), ObjectStoragePath(f"file://{tmp_path}/b.png"))
    assert os.listdir(tmp_path) == ["a.png"]


def test_s3_publish_small_and_multipart(s3: S3Server):
    small, large = os.urandom(1000), os.urandom(19 * MIB)
    publish(io.BytesIO(small), ObjectStoragePath(f"s3://{BUCKET}/o/small.png", conn_id=AWS_CONN_ID))
    publish(io.BytesIO(large), ObjectStoragePath(f"s3://{BUCKET}/o/large.png", conn_id=AWS_CONN_ID))

    assert s3.client.get_object(Bucket=BUCKET, Key="o/small.png")["Body"].read() == small
    stored = s3.client.get_object(Bucket=BUCKET, Key="o/large.png")["Body"].read()
    assert hashlib.sha256(stored).digest() == hashlib.sha256(large).digest()
    assert s3.pending_multipart_uploads() == []


@pytest.mark.parametrize("fail_after", [1000, 20 * MIB], ids=["before-first-part", "after-two-parts"])
def test_s3_publish_that_fails_leaves_no_object_and_no_pending_upload(s3: S3Server, fail_after):
    target = ObjectStoragePath(f"s3://{BUCKET}/o/a.png", conn_id=AWS_CONN_ID)

    with pytest.raises(ConnectionError):
        publish(io.BufferedReader(DiesMidway(fail_after), buffer_size=MIB), target)

    assert s3.keys() == []
    assert s3.pending_multipart_uploads() == []


def test_s3_publish_that_fails_keeps_the_previous_object(s3: S3Server):
    s3.client.put_object(Bucket=BUCKET, Key="o/a.png", Body=b"old image")
    target = ObjectStoragePath(f"s3://{BUCKET}/o/a.png", conn_id=AWS_CONN_ID)

    with pytest.raises(ConnectionError):
        publish(io.BufferedReader(DiesMidway(12 * MIB), buffer_size=MIB), target)

    assert s3.client.get_object(Bucket=BUCKET, Key="o/a.png")["Body"].read() == b"old image"
    assert s3.pending_multipart_uploads() == []


def _operator(**kwargs) -> LumaUploadOutputsOperator:
    return LumaUploadOutputsOperator(task_id="upload", generation="x", **kwargs)


def test_destination_defaults_to_the_provider_config(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW__LUMA__OUTPUT_PATH", f"s3://{BUCKET}/configured")
    monkeypatch.setenv("AIRFLOW__LUMA__OUTPUT_CONN_ID", AWS_CONN_ID)

    folder = _operator().resolve_destination()
    assert (folder.protocol, folder.path) == ("s3", f"{BUCKET}/configured")
    assert conn_id_of(folder) == AWS_CONN_ID

    own = _operator(destination=str(tmp_path), destination_conn_id=None).resolve_destination()
    assert (own.protocol, own.path) == ("file", str(tmp_path))


def test_a_path_keeps_its_own_connection_over_the_configured_one(monkeypatch):
    monkeypatch.setenv("AIRFLOW__LUMA__OUTPUT_CONN_ID", "configured_conn")
    own = ObjectStoragePath(f"s3://{BUCKET}/own", conn_id=AWS_CONN_ID)
    assert conn_id_of(_operator(destination=own).resolve_destination()) == AWS_CONN_ID
    bare = ObjectStoragePath(f"s3://{BUCKET}/bare")
    assert conn_id_of(_operator(destination=bare).resolve_destination()) == "configured_conn"


def test_missing_destination_names_the_config_keys(monkeypatch):
    monkeypatch.delenv("AIRFLOW__LUMA__OUTPUT_PATH", raising=False)
    with pytest.raises(LumaConfigurationError, match=r"\[luma\] output_path.*AIRFLOW__LUMA__OUTPUT_PATH"):
        _operator().resolve_destination()


def test_invalid_if_exists_fails_when_the_dag_is_parsed():
    with pytest.raises(
        ValueError, match="if_exists: invalid value 'replace'; valid: overwrite, skip_if_ident"
    ):
        _operator(if_exists="replace")


@pytest.mark.parametrize("value", ["not-a-uuid", {"state": "completed"}, 42])
def test_generation_input_must_be_an_id_or_a_result_dict(value):
    with pytest.raises(LumaRequestValidationError, match=r"^generation: expected a generation id"):
        _parse_generation(value)


def test_generation_input_reads_the_result_dict():
    generation_id = "d290f1ee-6c54-4b01-90e6-d701748f0851"
    result = {"generation_id": generation_id, "request_id": "r-1", "request": {"prompt": "p"}}

    assert _parse_generation(result) == (generation_id, {"prompt": "p"}, "r-1")
    assert _parse_generation(f" {generation_id} ") == (generation_id, None, None)


def test_s3_publish_settles_its_deferred_file(s3: S3Server):
    target = ObjectStoragePath(f"s3://{BUCKET}/o/a.png", conn_id=AWS_CONN_ID)
    publish(io.BytesIO(b"image"), target)
    with pytest.raises(ConnectionError):
        publish(io.BufferedReader(DiesMidway(1000)), target)

    # Nothing is left on the filesystem's transaction for a later `with fs.transaction` to commit.
    assert list(target.fs.transaction.files) == []


@pytest.mark.parametrize("fail_after", [1000, 20 * MIB], ids=["small", "multipart"])
def test_stores_without_deferred_commit_write_a_temporary_key_and_move_it(
    s3: S3Server, monkeypatch, fail_after
):
    monkeypatch.setattr(storage, "_DEFERRED_COMMIT_PROTOCOLS", frozenset())
    target = ObjectStoragePath(f"s3://{BUCKET}/o/a.png", conn_id=AWS_CONN_ID)
    data = os.urandom(3 * MIB)

    publish(io.BytesIO(data), target)
    assert s3.keys() == ["o/a.png"]
    assert s3.client.get_object(Bucket=BUCKET, Key="o/a.png")["Body"].read() == data

    with pytest.raises(ConnectionError):
        publish(io.BufferedReader(DiesMidway(fail_after), buffer_size=MIB), target)
    # fsspec committed the broken temporary key on close; it was deleted, and the image is the old one.
    assert s3.keys() == ["o/a.png"]
    assert s3.client.get_object(Bucket=BUCKET, Key="o/a.png")["Body"].read() == data
    assert s3.pending_multipart_uploads() == []
