"""
The fault matrix, upload rows: ``LumaUploadOutputsOperator`` against the emulator over real HTTP, with
real storage: a local folder, and moto's S3 on 127.0.0.1.

Every row runs on both stores and asserts the outcome and what storage holds afterwards: the objects
(listed), nothing partial (no ``.partial`` file or key, no pending multipart upload), nothing outside the
destination, every record describing the bytes beside it, and the emulator's count of output downloads.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_luma._compat import AirflowFailException
from airflow_provider_luma.exceptions import LumaRequestValidationError, LumaTransportError
from airflow_provider_luma.operators.luma import LumaUploadOutputsOperator
from airflow_provider_luma.testing import Fault
from tests.support import AWS_CONN_ID, BUCKET, S3Server, completed_generation, emulator_bytes, task_context

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from airflow_provider_luma.testing import LumaEmulator

pytestmark = [pytest.mark.usefixtures("luma_connection"), pytest.mark.timeout(120)]

DOWNLOADS = "GET output"
MB = 1024 * 1024
#: Over two 8 MiB parts: the image goes to S3 as a multipart upload.
MULTIPART_IMAGE = 20 * MB


@dataclass
class Store:
    """One destination under test, and a look at everything its storage holds."""

    kind: str
    destination: str
    conn_id: str | None
    #: Every object in the storage, by full path or key (not only under the destination).
    everything: Callable[[], dict[str, bytes]]
    prefix: str
    pending_uploads: Callable[[], list[Any]]
    #: What changes when an object is rewritten (mtime, or ETag and LastModified).
    stamp: Callable[[str], Any]
    #: An absolute path outside the destination that ``everything`` still sees (so a regression shows).
    elsewhere: str

    def objects(self) -> dict[str, bytes]:
        """The objects under the destination, by name relative to it."""
        return {
            path.removeprefix(self.prefix): data
            for path, data in self.everything().items()
            if path.startswith(self.prefix)
        }

    def assert_clean(self, names: list[str]) -> dict[str, bytes]:
        """Exactly ``names`` under the destination, nothing partial, nothing elsewhere, records true."""
        everything = self.everything()
        assert sorted(self.objects()) == sorted(names)
        assert [path for path in everything if not path.startswith(self.prefix)] == []
        assert [path for path in everything if ".partial" in path] == []
        assert self.pending_uploads() == []
        objects = self.objects()
        for name, data in objects.items():
            if name.endswith(".json"):
                record, image = json.loads(data), objects[name.removesuffix(".json")]
                assert (record["sha256"], record["size"]) == (hashlib.sha256(image).hexdigest(), len(image))
        return objects

    def upload(
        self, generation: Any, context: dict[str, Any] | None = None, **kwargs: Any
    ) -> tuple[LumaUploadOutputsOperator, dict[str, Any]]:
        operator = LumaUploadOutputsOperator(
            task_id="upload",
            generation=generation,
            destination=self.destination,
            destination_conn_id=self.conn_id,
            **kwargs,
        )
        return operator, operator.execute(context or task_context())


def _local_store(root: Path) -> Store:
    destination = root / "images"

    def everything() -> dict[str, bytes]:
        return {str(path): path.read_bytes() for path in root.rglob("*") if path.is_file()}

    return Store(
        kind="local",
        destination=str(destination),
        conn_id=None,
        everything=everything,
        prefix=f"{destination}/",
        pending_uploads=list,
        stamp=lambda name: os.stat(destination / name).st_mtime_ns,
        elsewhere=str(root / "elsewhere"),
    )


def _s3_store(s3: S3Server) -> Store:
    def everything() -> dict[str, bytes]:
        return {key: s3.client.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in s3.keys()}  # noqa: SIM118 (a list of keys, not a dict)

    def stamp(name: str) -> Any:
        head = s3.client.head_object(Bucket=BUCKET, Key=f"images/{name}")
        return head["ETag"], head["LastModified"]

    return Store(
        kind="s3",
        destination=f"s3://{BUCKET}/images",
        conn_id=AWS_CONN_ID,
        everything=everything,
        prefix="images/",
        pending_uploads=s3.pending_multipart_uploads,
        stamp=stamp,
        elsewhere="",
    )


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "local":
        yield _local_store(tmp_path)
        return
    s3: S3Server = request.getfixturevalue("s3_server")
    s3.empty()
    for upload in s3.pending_multipart_uploads():
        s3.client.abort_multipart_upload(Bucket=BUCKET, Key=upload["Key"], UploadId=upload["UploadId"])
    yield _s3_store(s3)
    s3.empty()


def _names(generation_id: str) -> list[str]:
    return [f"{generation_id}-0.png", f"{generation_id}-0.png.json"]


def _fail_storage_writes(store: Store, monkeypatch: pytest.MonkeyPatch, which: Callable[[str], bool]) -> None:
    """Make the store fail while writing the objects ``which`` selects (by final name or key)."""
    if store.kind == "local":
        # The disk fills up once the bytes went out: flushing the temporary file to disk fails.
        monkeypatch.setattr(os, "fsync", _fsync_failing_for(os.fsync, which))
        return
    from s3fs.core import S3File

    fs = ObjectStoragePath(store.destination, conn_id=store.conn_id).fs
    call_s3, pipe_file = S3File._call_s3, fs.pipe_file

    def call_s3_or_fail(self: Any, method: str, *args: Any, **kwargs: Any) -> Any:
        if method == "upload_part" and kwargs.get("PartNumber") == 2 and which(self.path):
            raise OSError("S3 went away during part 2")
        return call_s3(self, method, *args, **kwargs)

    def pipe_file_or_fail(path: str, *args: Any, **kwargs: Any) -> Any:
        if which(path):
            raise OSError("S3 went away during the PutObject")
        return pipe_file(path, *args, **kwargs)

    monkeypatch.setattr(S3File, "_call_s3", call_s3_or_fail)
    # fsspec binds the sync methods to each filesystem instance: this store's instance it is.
    monkeypatch.setattr(fs, "pipe_file", pipe_file_or_fail)


def _fsync_failing_for(fsync: Callable[[int], None], which: Callable[[str], bool]) -> Callable[[int], None]:
    def fsync_or_fail(fd: int) -> None:
        # The temporary file is named after its final name: ``.<name>.<uuid>.partial``.
        name = os.readlink(f"/proc/self/fd/{fd}")
        if which(name.rsplit(".", 2)[0]):
            raise OSError(28, "No space left on device")
        fsync(fd)

    return fsync_or_fail


# ---------------------------------------------------------------------------- rows


def test_expired_url_is_refreshed_once_and_stored(
    luma_emulator: LumaEmulator, luma_connection: str, store: Store
):
    result = completed_generation(luma_connection)
    luma_emulator.expire_output_urls()  # every URL minted so far, as after an hour
    luma_emulator.add_fault(Fault(method="OUTPUT", status=403, times=1, detail="Request has expired"))

    _, manifest = store.upload(result)

    assert luma_emulator.stats.requests[DOWNLOADS] == 2  # the refused one, then one fresh URL
    assert manifest["outputs"][0]["status"] == "written"
    objects = store.assert_clean(_names(result["generation_id"]))
    assert objects[f"{result['generation_id']}-0.png"] == emulator_bytes(
        luma_connection, result["generation_id"]
    )


def test_download_dying_half_way_fails_and_leaves_nothing(
    luma_emulator: LumaEmulator, luma_connection: str, store: Store
):
    earlier, result = completed_generation(luma_connection), completed_generation(luma_connection)
    store.upload(earlier, file_name="hero{ext}")
    before = store.objects()
    luma_emulator.configure(output_padding_bytes=MULTIPART_IMAGE)
    luma_emulator.add_fault(Fault(method="OUTPUT", kind="drop_midway"))
    downloads = luma_emulator.stats.requests[DOWNLOADS]

    with pytest.raises(LumaTransportError, match="broke after"):
        store.upload(result, file_name="hero{ext}", if_exists="overwrite")

    assert luma_emulator.stats.requests[DOWNLOADS] == downloads + 1
    # The download went to a scratch file: the destination never saw it, the earlier image is intact.
    assert store.assert_clean(["hero.png", "hero.png.json"]) == before


def test_storage_failing_mid_write_leaves_nothing(
    luma_emulator: LumaEmulator, luma_connection: str, store: Store, monkeypatch: pytest.MonkeyPatch
):
    luma_emulator.configure(output_padding_bytes=MULTIPART_IMAGE)
    result = completed_generation(luma_connection)
    _fail_storage_writes(store, monkeypatch, lambda name: name.endswith(".png"))

    with pytest.raises(OSError, match=r"No space left|went away"):
        store.upload(result)

    assert luma_emulator.stats.requests[DOWNLOADS] == 1
    store.assert_clean([])


@pytest.mark.parametrize(
    "file_name",
    ["../{generation_id}{ext}", "/{generation_id}{ext}", "a/../../{generation_id}{ext}"],
    ids=["parent", "absolute", "climbing"],
)
def test_traversal_attempts_write_nothing_anywhere(
    luma_emulator: LumaEmulator, luma_connection: str, store: Store, file_name: str
):
    result = completed_generation(luma_connection)
    if file_name.startswith("/"):
        file_name = store.elsewhere + file_name

    with pytest.raises(LumaRequestValidationError, match=r"^file_name: "):
        store.upload(result, file_name=file_name)  # a literal fails when the DAG is parsed
    operator = LumaUploadOutputsOperator(
        task_id="upload",
        generation=result,
        destination=store.destination,
        destination_conn_id=store.conn_id,
        file_name="{{ pattern }}",
    )
    context = {**task_context(), "pattern": file_name}
    operator.render_template_fields(context)
    with pytest.raises(AirflowFailException, match=r"^file_name: "):
        operator.execute(context)  # a rendered one fails before anything is read or written

    assert luma_emulator.stats.requests[DOWNLOADS] == 0
    store.assert_clean([])


def test_a_generation_id_that_is_not_the_tasks_writes_nothing(
    luma_emulator: LumaEmulator, luma_connection: str, store: Store, monkeypatch: pytest.MonkeyPatch
):
    from airflow_provider_luma.hooks.luma import LumaHook

    asked, other = completed_generation(luma_connection), completed_generation(luma_connection)
    get_generation = LumaHook.get_generation
    # The API answers about another generation than the one asked for.
    monkeypatch.setattr(
        LumaHook, "get_generation", lambda self, _: get_generation(self, other["generation_id"])
    )

    with pytest.raises(AirflowFailException, match=f"asked for generation {asked['generation_id']}"):
        store.upload(asked)

    assert luma_emulator.stats.requests[DOWNLOADS] == 0
    store.assert_clean([])


def test_two_mapped_writers_on_one_path(
    luma_emulator: LumaEmulator,
    luma_connection: str,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    first, second, third = (completed_generation(luma_connection) for _ in range(3))
    contexts = [task_context() for _ in range(3)]
    for map_index, context in enumerate(contexts):
        context["ti"].map_index = map_index

    store.upload(first, contexts[0], file_name="hero{ext}")
    store.upload(second, contexts[1], file_name="hero{ext}")

    warnings = [line for line in capsys.readouterr().out.splitlines() if "has no {generation_id}" in line]
    assert len(warnings) == 2  # each mapped writer, once
    objects = store.assert_clean(["hero.png", "hero.png.json"])
    assert json.loads(objects["hero.png.json"])["generation_id"] == second["generation_id"]

    # A third writer dies between its image and its record: its image stands alone, with no record
    # describing the second writer's bytes next to it.
    _fail_storage_writes(store, monkeypatch, lambda name: name.endswith(".json"))
    with pytest.raises(OSError, match=r"No space left|went away"):
        store.upload(third, contexts[2], file_name="hero{ext}")
    objects = store.assert_clean(["hero.png"])
    assert objects["hero.png"] == emulator_bytes(luma_connection, third["generation_id"])


@pytest.mark.parametrize("if_exists", ["skip_if_identical", "fail", "overwrite"])
def test_retry_after_success(luma_emulator: LumaEmulator, luma_connection: str, store: Store, if_exists: str):
    result = completed_generation(luma_connection)
    names = _names(result["generation_id"])
    store.upload(result, if_exists=if_exists)
    stamps = {name: store.stamp(name) for name in names}
    downloads = luma_emulator.stats.requests[DOWNLOADS]
    retry = task_context()
    retry["ti"].try_number = 2

    _, manifest = store.upload(result, retry, if_exists=if_exists)

    objects = store.assert_clean(names)
    record = json.loads(objects[names[1]])
    if if_exists == "overwrite":
        assert manifest["outputs"][0]["status"] == "written"
        assert luma_emulator.stats.requests[DOWNLOADS] == downloads + 1
        assert record["airflow"]["try_number"] == 2
    else:
        # This task's own finished work: not downloaded, not rewritten, and for "fail" not a conflict.
        assert manifest["outputs"][0]["status"] == "skipped"
        assert luma_emulator.stats.requests[DOWNLOADS] == downloads
        assert {name: store.stamp(name) for name in names} == stamps
        assert record["airflow"]["try_number"] == 1
