"""The all-or-nothing write, destination resolution and input checks, on real local disk and S3 (moto)."""

from __future__ import annotations

import hashlib
import io
import os
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_luma import storage
from airflow_provider_luma.exceptions import (
    LumaConfigurationError,
    LumaIncompleteWriteError,
    LumaRequestValidationError,
)
from airflow_provider_luma.operators.upload import LumaUploadOutputsOperator, _parse_generation
from airflow_provider_luma.storage import conn_id_of, publish
from tests.support import AWS_CONN_ID, BUCKET, S3Server

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

MIB = 1024 * 1024


@contextmanager
def s3_requests(
    on_publish: Callable[..., None] | None = None, conn_id: str = AWS_CONN_ID
) -> Iterator[list[tuple[str, str | None]]]:
    """
    The S3 API calls s3fs makes in the block, as ``(operation, key)``, from an event hook on its client.

    :param on_publish: called with the call's ``params`` just before a ``PutObject`` or
        ``CompleteMultipartUpload`` goes out: the moment another writer could get in first.
    """
    fs = ObjectStoragePath(f"s3://{BUCKET}/", conn_id=conn_id).fs
    fs.connect()
    calls: list[tuple[str, str | None]] = []

    def record(event_name: str, params: dict[str, Any], **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        calls.append((operation, params.get("Key")))
        if on_publish is not None and operation in ("PutObject", "CompleteMultipartUpload"):
            on_publish(params=params)

    fs.s3.meta.events.register("before-parameter-build.s3", record)
    try:
        yield calls
    finally:
        fs.s3.meta.events.unregister("before-parameter-build.s3", record)


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

    publish(io.BytesIO(data), target, size=len(data))

    assert (tmp_path / "sub/dir/a.png").read_bytes() == data
    assert os.listdir(tmp_path / "sub/dir") == ["a.png"]


def test_local_publish_that_fails_leaves_nothing_and_keeps_the_old_file(tmp_path):
    target = ObjectStoragePath(f"file://{tmp_path}/a.png")
    (tmp_path / "a.png").write_bytes(b"old image")

    with pytest.raises(ConnectionError):
        publish(io.BufferedReader(DiesMidway(2 * MIB)), target, size=3 * MIB)

    assert (tmp_path / "a.png").read_bytes() == b"old image"
    assert os.listdir(tmp_path) == ["a.png"]

    with pytest.raises(ConnectionError):
        publish(
            io.BufferedReader(DiesMidway(2 * MIB)),
            ObjectStoragePath(f"file://{tmp_path}/b.png"),
            size=3 * MIB,
        )
    assert os.listdir(tmp_path) == ["a.png"]


def test_s3_publish_small_and_multipart(s3: S3Server):
    small, large = os.urandom(1000), os.urandom(19 * MIB)
    with s3_requests() as calls:
        publish(
            io.BytesIO(small), ObjectStoragePath(f"s3://{BUCKET}/o/small.png", conn_id=AWS_CONN_ID), size=1000
        )
    assert calls == [("PutObject", "o/small.png")]  # one request, not a three-request multipart upload
    with s3_requests() as calls:
        publish(
            io.BytesIO(large),
            ObjectStoragePath(f"s3://{BUCKET}/o/large.png", conn_id=AWS_CONN_ID),
            size=19 * MIB,
        )
    assert [operation for operation, _ in calls] == [
        "CreateMultipartUpload",
        *["UploadPart"] * 3,
        "ListParts",  # the stored size, checked before the upload is completed
        "CompleteMultipartUpload",
    ]

    assert s3.client.get_object(Bucket=BUCKET, Key="o/small.png")["Body"].read() == small
    stored = s3.client.get_object(Bucket=BUCKET, Key="o/large.png")["Body"].read()
    assert hashlib.sha256(stored).digest() == hashlib.sha256(large).digest()
    assert s3.pending_multipart_uploads() == []


@pytest.mark.parametrize("fail_after", [1000, 20 * MIB], ids=["before-first-part", "after-two-parts"])
def test_s3_publish_that_fails_leaves_no_object_and_no_pending_upload(s3: S3Server, fail_after):
    target = ObjectStoragePath(f"s3://{BUCKET}/o/a.png", conn_id=AWS_CONN_ID)

    with pytest.raises(ConnectionError):
        publish(io.BufferedReader(DiesMidway(fail_after), buffer_size=MIB), target, size=30 * MIB)

    assert s3.keys() == []
    assert s3.pending_multipart_uploads() == []


def test_s3_publish_that_fails_keeps_the_previous_object(s3: S3Server):
    s3.client.put_object(Bucket=BUCKET, Key="o/a.png", Body=b"old image")
    target = ObjectStoragePath(f"s3://{BUCKET}/o/a.png", conn_id=AWS_CONN_ID)

    with pytest.raises(ConnectionError):
        publish(io.BufferedReader(DiesMidway(12 * MIB), buffer_size=MIB), target, size=30 * MIB)

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
        LumaRequestValidationError,
        match="if_exists: invalid value 'replace'; valid: overwrite, skip_if_ident",
    ):
        _operator(if_exists="replace")


@pytest.mark.parametrize("value", ["not-a-uuid", {"state": "completed"}, 42])
def test_generation_input_must_be_an_id_or_a_result_dict(value):
    with pytest.raises(LumaRequestValidationError, match=r"^generation: expected a generation id"):
        _parse_generation(value)


def test_generation_input_reads_the_result_dict():
    generation_id = "d290f1ee-6c54-4b01-90e6-d701748f0851"
    result = {"generation_id": generation_id, "request_id": "r-1", "request": {"prompt": "p"}}

    assert _parse_generation(result) == (generation_id, {"prompt": "p"}, "r-1", None)
    assert _parse_generation(f" {generation_id} ") == (generation_id, None, None, None)


_GENERATION_ID = "d290f1ee-6c54-4b01-90e6-d701748f0851"
_MAX_3_REFS = {"prompt": "p", "type": "image", "model": "uni-1-max", "image_ref": [{"url": "u"}] * 3}


@pytest.mark.parametrize(
    ("extra", "cost"),
    [
        # The upstream figure wins, even where the table would say otherwise (it priced what it sent).
        ({"estimated_cost_usd": 0.5, "request": _MAX_3_REFS}, 0.5),
        ({"estimated_cost_usd": 0}, 0.0),
        # No figure, or none usable: the described request priced from the table.
        ({"request": {"prompt": "p", "type": "image", "model": "uni-1"}}, 0.0404),
        ({"request": _MAX_3_REFS}, 0.1030 + 2 * 0.0030),
        ({"estimated_cost_usd": "0.5", "request": _MAX_3_REFS}, 0.109),
        ({"estimated_cost_usd": True, "request": _MAX_3_REFS}, 0.109),
        ({"estimated_cost_usd": float("nan"), "request": _MAX_3_REFS}, 0.109),
    ],
)
def test_generation_input_gives_the_cost_of_the_generation(extra, cost):
    upstream = _parse_generation({"generation_id": _GENERATION_ID, **extra})
    assert upstream.estimated_cost_usd == pytest.approx(cost)


@pytest.mark.parametrize(
    "value",
    [_GENERATION_ID, {"generation_id": _GENERATION_ID}, {"generation_id": _GENERATION_ID, "request": "?"}],
)
def test_generation_input_without_a_figure_or_a_request_has_no_cost(value):
    assert _parse_generation(value).estimated_cost_usd is None


def test_s3_publish_settles_its_deferred_file(s3: S3Server):
    target = ObjectStoragePath(f"s3://{BUCKET}/o/a.png", conn_id=AWS_CONN_ID)
    publish(io.BytesIO(b"image" * 2 * MIB), target, size=10 * MIB)
    with pytest.raises(ConnectionError):
        publish(io.BufferedReader(DiesMidway(9 * MIB)), target, size=10 * MIB)

    # Nothing is left on the filesystem's transaction for a later `with fs.transaction` to commit.
    assert list(target.fs.transaction.files) == []


@pytest.mark.parametrize("fail_after", [1000, 20 * MIB], ids=["small", "multipart"])
def test_stores_without_deferred_commit_write_a_temporary_key_and_move_it(
    s3: S3Server, monkeypatch, fail_after
):
    monkeypatch.setattr(storage, "_DEFERRED_COMMIT_PROTOCOLS", frozenset())
    target = ObjectStoragePath(f"s3://{BUCKET}/o/a.png", conn_id=AWS_CONN_ID)
    data = os.urandom(3 * MIB)

    publish(io.BytesIO(data), target, size=len(data))
    assert s3.keys() == ["o/a.png"]
    assert s3.client.get_object(Bucket=BUCKET, Key="o/a.png")["Body"].read() == data

    with pytest.raises(ConnectionError):
        publish(io.BufferedReader(DiesMidway(fail_after), buffer_size=MIB), target, size=30 * MIB)
    # fsspec committed the broken temporary key on close; it was deleted, and the image is the old one.
    assert s3.keys() == ["o/a.png"]
    assert s3.client.get_object(Bucket=BUCKET, Key="o/a.png")["Body"].read() == data
    assert s3.pending_multipart_uploads() == []


# ---------------------------------------------------------------------------- exclusive writes


def test_local_exclusive_publish_refuses_an_existing_file_and_leaves_no_temporary(tmp_path):
    (tmp_path / "a.png").write_bytes(b"old image")
    target = ObjectStoragePath(f"file://{tmp_path}/a.png")

    with pytest.raises(FileExistsError):
        publish(io.BytesIO(b"new image"), target, size=9, exclusive=True)

    assert (tmp_path / "a.png").read_bytes() == b"old image"
    assert os.listdir(tmp_path) == ["a.png"]
    publish(io.BytesIO(b"new image"), ObjectStoragePath(f"file://{tmp_path}/b.png"), size=9, exclusive=True)
    assert (tmp_path / "b.png").read_bytes() == b"new image"
    assert sorted(os.listdir(tmp_path)) == ["a.png", "b.png"]


@pytest.mark.parametrize("size", [1000, 9 * MIB], ids=["put", "multipart"])
def test_s3_exclusive_publish_is_refused_by_the_server_when_the_key_exists(s3: S3Server, size):
    s3.client.put_object(Bucket=BUCKET, Key="o/a.png", Body=b"old image")
    target = ObjectStoragePath(f"s3://{BUCKET}/o/a.png", conn_id=AWS_CONN_ID)

    with s3_requests() as calls, pytest.raises(FileExistsError):
        publish(io.BytesIO(os.urandom(size)), target, size=size, exclusive=True)

    # No existence check before: the final PutObject / CompleteMultipartUpload carried If-None-Match.
    assert "HeadObject" not in [operation for operation, _ in calls]
    assert s3.client.get_object(Bucket=BUCKET, Key="o/a.png")["Body"].read() == b"old image"
    assert s3.pending_multipart_uploads() == []


def test_exclusive_publish_on_stores_without_a_conditional_write_checks_before_the_move(
    s3: S3Server, monkeypatch
):
    monkeypatch.setattr(storage, "_DEFERRED_COMMIT_PROTOCOLS", frozenset())
    s3.client.put_object(Bucket=BUCKET, Key="o/a.png", Body=b"old image")
    target = ObjectStoragePath(f"s3://{BUCKET}/o/a.png", conn_id=AWS_CONN_ID)

    with pytest.raises(FileExistsError):
        publish(io.BytesIO(b"new image"), target, size=9, exclusive=True)

    assert s3.keys() == ["o/a.png"]
    assert s3.client.get_object(Bucket=BUCKET, Key="o/a.png")["Body"].read() == b"old image"


# ---------------------------------------------------------------------------- short writes


class _DropsTheLastByte:
    """A sink that loses the last byte of each write and reports it written, like a lying device."""

    def __init__(self, sink: Any) -> None:
        self._sink = sink

    def write(self, data: bytes) -> int:
        self._sink.write(data[:-1])
        return len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sink, name)

    def __enter__(self) -> _DropsTheLastByte:
        return self

    def __exit__(self, *exc: object) -> None:
        self._sink.__exit__(*exc)


def test_local_short_write_never_gets_the_final_name(tmp_path, monkeypatch):
    (tmp_path / "a.png").write_bytes(b"old image")

    def short_open(*args: Any, **kwargs: Any) -> _DropsTheLastByte:
        return _DropsTheLastByte(open(*args, **kwargs))

    monkeypatch.setattr(storage, "open", short_open, raising=False)
    data = os.urandom(2 * MIB)

    with pytest.raises(LumaIncompleteWriteError, match=rf"{2 * MIB - 2} bytes stored but {2 * MIB} expected"):
        publish(io.BytesIO(data), ObjectStoragePath(f"file://{tmp_path}/a.png"), size=len(data))

    assert (tmp_path / "a.png").read_bytes() == b"old image"
    assert os.listdir(tmp_path) == ["a.png"]


@pytest.mark.parametrize("conditional", [True, False], ids=["multipart", "temporary-key"])
def test_s3_short_write_never_gets_the_final_name(s3: S3Server, monkeypatch, conditional):
    from s3fs.core import S3File

    if not conditional:
        monkeypatch.setattr(storage, "_DEFERRED_COMMIT_PROTOCOLS", frozenset())
    write = S3File.write
    monkeypatch.setattr(S3File, "write", lambda self, data: write(self, data[:-1]) + 1)
    target = ObjectStoragePath(f"s3://{BUCKET}/o/a.png", conn_id=AWS_CONN_ID)

    with pytest.raises(LumaIncompleteWriteError, match="bytes stored but 10485760 expected"):
        publish(io.BytesIO(os.urandom(10 * MIB)), target, size=10 * MIB)

    assert s3.keys() == []
    assert s3.pending_multipart_uploads() == []


def test_s3_small_source_shorter_than_announced_is_not_put(s3: S3Server):
    target = ObjectStoragePath(f"s3://{BUCKET}/o/a.json", conn_id=AWS_CONN_ID)

    with pytest.raises(LumaIncompleteWriteError, match="999 bytes stored but 1000 expected"):
        publish(io.BytesIO(b"x" * 999), target, size=1000)

    assert s3.keys() == []
