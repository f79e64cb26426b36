"""
Fault matrix, bad input: every request rule of the API notes (luma-api.md §3) and the ways a DAG can
break them, through ``LumaGenerateImageOperator`` against the emulator over HTTP.

Each row is checked where a DAG author meets it: a literal value fails the operator's construction
(the DAG import); the same value arriving at run time (rendered from a template, read from storage)
fails ``execute``. Either way the error names the field and, where there is a fixed set, the valid
values; it is an ``AirflowFailException`` (no retry can fix it); and the emulator saw no request at
all, neither a POST nor a GET. The valid sets are written out here, not read from the code.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from airflow.exceptions import AirflowFailException

from airflow_provider_luma.exceptions import LumaRequestValidationError
from airflow_provider_luma.operators.generate import LumaGenerateImageOperator
from tests.fakes import FakeTaskStateStore, make_context
from tests.support import run_dag

DAGS = Path(__file__).resolve().parents[1] / "dags"
GEN_ID = "d290f1ee-6c54-4b01-90e6-d701748f0851"
FILE_ID = "0b7f6a3e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
URL = "https://cdn.example.com/refs/a.png"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 2
PNG_B64 = base64.b64encode(PNG).decode()
MAX_IMAGE_BYTES = 52_428_800  # the API's 50 MB, per luma-api.md §3.3

RATIOS = "1:1, 1:2, 1:3, 16:9, 2:1, 2:3, 3:1, 3:2, 9:16"
PORTRAIT = "2:3, 9:16, 1:2, 1:3"
REF_KEYS = ("'url'", "'data'", "'generation_id'", "'file_id'")
MEDIA_TYPES = "image/png, image/jpeg, image/webp, image/gif"
NOT_AN_IMAGE = "not a PNG, JPEG, WebP or GIF image"
FAST = {"deferrable": False, "initial_wait": 0.05, "poll_interval": 0.05, "timeout": 30}

pytestmark = pytest.mark.usefixtures("luma_connection")


@dataclass(frozen=True)
class Row:
    """One bad input: operator arguments, the field the error must name, and what else it must say."""

    id: str
    kwargs: dict[str, Any]
    field: str
    says: tuple[str, ...] = ()
    #: Text the message must not carry (a credential or a body the value contained).
    never: tuple[str, ...] = ()


def _edit(**kwargs: Any) -> dict[str, Any]:
    return {"type": "image_edit", "source": GEN_ID, **kwargs}


def _ref(ref: Any) -> dict[str, Any]:
    return {"image_ref": [ref]}


ROWS: list[Row] = [
    # --- prompt: 1 to 6000 characters, a string
    Row("prompt-empty", {"prompt": ""}, "prompt", ("between 1 and 6000", "got 0")),
    Row("prompt-6001", {"prompt": "x" * 6001}, "prompt", ("between 1 and 6000", "got 6001")),
    Row("prompt-int", {"prompt": 5}, "prompt", ("between 1 and 6000", "int")),
    # --- type, model: the uni-1 sets
    *(
        Row(f"type-{kind}", {"type": kind}, "type", ("image, image_edit, layering",))
        for kind in ("video", "video_edit")
    ),
    # --- layering: uni-1 only, a source, no references, at most 500 characters of prompt
    Row("layering-no-source", {"type": "layering", "prompt": None}, "source", ("required",)),
    Row(
        "layering-long-prompt",
        {"type": "layering", "prompt": "x" * 501, "source": "https://example.com/a.png"},
        "prompt",
        ("500",),
    ),
    Row(
        "layering-resolution",
        {"type": "layering", "source": "https://example.com/a.png", "layering": {"resolution": "4k"}},
        "layering",
        ("1k", "2k"),
    ),
    *(Row(f"model-{m}", {"model": m}, "model", ("uni-1, uni-1-max",)) for m in ("ray-3.2", "uni-2")),
    # --- aspect_ratio: uni-1's nine; the SDK's video-only ratios and near misses are refused
    *(
        Row(f"ratio-{ratio or 'empty'}", {"aspect_ratio": ratio}, "aspect_ratio", (RATIOS,))
        for ratio in ("4:3", "21:9", "3:4", "16:10", " 16:9", "")
    ),
    Row("ratio-not-a-string", {"aspect_ratio": 1.5}, "aspect_ratio", (RATIOS,)),
    # --- style, and manga needs a portrait ratio (or none)
    Row("style-unknown", {"style": "anime"}, "style", ("auto, manga",)),
    *(
        Row(f"manga-{ratio}", {"style": "manga", "aspect_ratio": ratio}, "aspect_ratio", (PORTRAIT,))
        for ratio in ("3:1", "2:1", "16:9", "3:2", "1:1")
    ),
    # --- output_format, web_search, user_id
    *(Row(f"format-{f}", {"output_format": f}, "output_format", ("png, jpeg",)) for f in ("webp", "PNG")),
    Row("web_search-string", {"web_search": "yes"}, "web_search", ("true or false",)),
    Row("web_search-int", {"web_search": 1}, "web_search", ("true or false",)),
    Row("user_id-int", {"user_id": 7}, "user_id", ("string",)),
    # --- source: required for image_edit, refused for image
    Row("source-missing", {"type": "image_edit"}, "source", ("required", "image_edit")),
    Row("source-on-image", {"source": URL}, "source", ("only valid", "image_edit")),
    # --- ImageRef: exactly one of url / data / generation_id / file_id
    Row("ref-none", _ref({}), "image_ref[0]", REF_KEYS),
    Row("ref-url-and-data", _ref({"url": URL, "data": PNG_B64}), "image_ref[0]", REF_KEYS),
    Row("ref-id-and-file", _ref({"generation_id": GEN_ID, "file_id": FILE_ID}), "image_ref[0]", REF_KEYS),
    Row("source-url-and-id", _edit(source={"url": URL, "generation_id": GEN_ID}), "source", REF_KEYS),
    # --- data: media_type required and an image type, 50 MB decoded, valid base64, image bytes
    Row("data-no-media-type", _ref({"data": PNG_B64}), "image_ref[0]", ("'media_type'", MEDIA_TYPES)),
    Row(
        "data-text-media-type",
        _ref({"data": PNG_B64, "media_type": "text/plain"}),
        "image_ref[0]",
        (MEDIA_TYPES,),
    ),
    Row(
        "data-over-50MB",
        # 4 base64 characters decode to 3 bytes: one block over the limit.
        _ref({"data": "A" * ((MAX_IMAGE_BYTES // 3 + 1) * 4), "media_type": "image/png"}),
        "image_ref[0]",
        ("50 MB",),
    ),
    Row(
        "data-bad-base64",
        _ref({"data": "not base64!", "media_type": "image/png"}),
        "image_ref[0]",
        ("base64",),
    ),
    Row(
        "data-not-an-image",
        _edit(source={"data": base64.b64encode(b"hello, world").decode(), "media_type": "image/png"}),
        "source",
        (NOT_AN_IMAGE,),
    ),
    Row("data-empty", _ref({"data": "", "media_type": "image/png"}), "image_ref[0]", (NOT_AN_IMAGE,)),
    # --- ids are UUIDs
    Row(
        "generation_id-not-uuid",
        _ref({"generation_id": "gen-1"}),
        "image_ref[0]",
        ("'generation_id'", "UUID"),
    ),
    Row("file_id-not-uuid", _ref({"file_id": "file-123"}), "image_ref[0]", ("'file_id'", "UUID")),
    # --- URLs: https only, to a public host (the API fetches through public DNS, SSRF-protected)
    Row("url-http-string", _ref("http://cdn.example.com/a.png"), "image_ref[0]", ("https://",)),
    Row("url-http-mapping", _ref({"url": "http://cdn.example.com/a.png"}), "image_ref[0]", ("https://",)),
    Row("url-no-host", _ref({"url": "https:///a.png"}), "image_ref[0]", ("host",)),
    *(
        Row(f"url-{name}", _ref({"url": f"https://{host}/a.png"}), "image_ref[0]", ("public",))
        for name, host in (
            ("loopback", "127.0.0.1"),
            ("localhost", "localhost"),
            ("private", "10.0.0.5"),
            ("link-local", "169.254.169.254"),
            ("ipv6-loopback", "[::1]"),
        )
    ),
    # --- reference counts: 9, or 8 beside a source
    Row("refs-10", {"image_ref": [URL] * 10}, "image_ref", ("at most 9",)),
    Row("refs-9-with-source", _edit(image_ref=[URL] * 9), "image_ref", ("at most 8", "source")),
    # --- wrong types
    Row("image_ref-string", {"image_ref": "notalist"}, "image_ref[0]", ("https://", "'notalist'")),
    Row("image_ref-int", {"image_ref": 5}, "image_ref[0]", ("int",)),
    Row("image_ref-none-item", {"image_ref": [None]}, "image_ref[0]", ("NoneType",)),
    Row("source-int", _edit(source=5), "source", ("int",)),
    Row("ref-url-int", _ref({"url": 5}), "image_ref[0]", ("'url'", "string", "int")),
    Row("ref-data-int", _ref({"data": 5, "media_type": "image/png"}), "image_ref[0]", ("'data'", "string")),
    # --- unknown fields of a reference
    Row(
        "ref-unknown-key",
        _ref({"url": URL, "weight": 0.5}),
        "image_ref[0]",
        ("weight", "url, data, media_type, generation_id, file_id"),
    ),
    Row("source-unknown-key", _edit(source={"uri": URL}), "source", ("uri", "url, data")),
    # --- the message quotes a bad value without the secrets or the bulk it may hold
    Row(
        "quoted-signed-url",
        _ref("http://minio.internal:9000/b/k.png?X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature=feedface"),
        "image_ref[0]",
        ("https://",),
        never=("X-Amz", "AKIAEXAMPLE", "feedface"),
    ),
    Row("quoted-base64", _edit(source=PNG_B64), "source", ("https://",), never=(PNG_B64[:48],)),
]


def _operator(**kwargs: Any) -> LumaGenerateImageOperator:
    return LumaGenerateImageOperator(task_id="generate", **{"prompt": "a fox in the snow", **FAST, **kwargs})


def _check_error(error: BaseException, row: Row) -> None:
    assert isinstance(error, AirflowFailException), repr(error)
    cause = error.__cause__
    assert isinstance(cause, LumaRequestValidationError), repr(cause)
    assert cause.field == row.field
    message = str(error)
    assert message.startswith(f"{row.field}: "), message
    for expected in row.says:
        assert expected in message, message
    for secret in row.never:
        assert secret not in message, message


def _assert_nothing_sent(emulator: Any) -> None:
    stats = emulator.stats
    assert stats.requests == {} and stats.generations_created == 0, stats


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_a_literal_bad_value_fails_the_dag_import(row: Row, luma_emulator: Any) -> None:
    with pytest.raises(AirflowFailException) as info:
        _operator(**row.kwargs)
    _check_error(info.value, row)
    _assert_nothing_sent(luma_emulator)


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_a_bad_value_at_run_time_fails_before_any_request(row: Row, luma_emulator: Any) -> None:
    # A template defers validation to the run, where the rendered values land on the attributes.
    operator = _operator(prompt="{{ params.prompt }}")
    for name, value in {"prompt": "a fox in the snow", **row.kwargs}.items():
        setattr(operator, name, value)
    with pytest.raises(AirflowFailException) as info:
        operator.execute(make_context(FakeTaskStateStore()))
    _check_error(info.value, row)
    _assert_nothing_sent(luma_emulator)


def test_an_unknown_operator_argument_fails_the_dag_import_naming_it(luma_emulator: Any) -> None:
    with pytest.raises(TypeError, match=r"aspect'?: '16:9'"):
        _operator(aspect="16:9")
    _assert_nothing_sent(luma_emulator)


# --- files in storage: checked when the task reads them, never at parse -----------------------------


def _sparse_over_limit(folder: Path) -> Path:
    big = folder / "big.png"
    with big.open("wb") as handle:
        handle.truncate(MAX_IMAGE_BYTES + 1)  # sparse: costs no disk
    return big


def _text_named_png(folder: Path) -> Path:
    text = folder / "notes.png"
    text.write_text("these are notes, not an image\n")
    return text


def _empty_png(folder: Path) -> Path:
    empty = folder / "empty.png"
    empty.touch()
    return empty


STORAGE_ROWS = [
    ("over-50MB", _sparse_over_limit, ("50 MB", str(MAX_IMAGE_BYTES + 1))),
    ("text-named-png", _text_named_png, (NOT_AN_IMAGE,)),
    ("empty-png", _empty_png, (NOT_AN_IMAGE,)),
]


@pytest.mark.parametrize("as_ref", [False, True], ids=["source", "image_ref"])
@pytest.mark.parametrize(
    ("make", "says"), [row[1:] for row in STORAGE_ROWS], ids=[r[0] for r in STORAGE_ROWS]
)
def test_a_bad_storage_file_fails_before_any_request(
    make: Any, says: tuple[str, ...], as_ref: bool, luma_emulator: Any, tmp_path: Path
) -> None:
    url = f"file://{make(tmp_path)}"
    kwargs = _edit(image_ref=[url]) if as_ref else _edit(source=url)
    operator = _operator(**kwargs)  # parse reads nothing: the storage reference passes
    with pytest.raises(AirflowFailException) as info:
        operator.execute(make_context(FakeTaskStateStore()))
    _check_error(info.value, Row("storage", kwargs, "image_ref[0]" if as_ref else "source", says))
    _assert_nothing_sent(luma_emulator)


def test_a_missing_storage_file_names_the_field(luma_emulator: Any, tmp_path: Path) -> None:
    operator = _operator(**_edit(source=f"file://{tmp_path / 'nowhere.png'}"))
    with pytest.raises(AirflowFailException) as info:
        operator.execute(make_context(FakeTaskStateStore()))
    _check_error(info.value, Row("missing", {}, "source", ("nowhere.png",)))
    _assert_nothing_sent(luma_emulator)


# --- templated values that render bad, in a real DAG run ----------------------------------------------

#: task (map index) -> the text its failure must carry: the field, the bad value, the valid values.
TEMPLATED = {
    ("ratio_from_conf", -1): f"aspect_ratio: invalid value '4:3'; valid: {RATIOS}",
    ("prompt_from_params", -1): "prompt: must be between 1 and 6000 characters (got 0)",
    ("style_from_params", -1): f"aspect_ratio: style 'manga' needs a portrait ratio ({PORTRAIT})",
    ("source_from_conf", -1): f"source: the file is {NOT_AN_IMAGE}",
    ("mapped_format", 0): "output_format: invalid value 'webp'; valid: png, jpeg",
    ("mapped_format", 1): "output_format: invalid value 'tiff'; valid: png, jpeg",
}


@pytest.mark.usefixtures("airflow_db")
def test_templated_values_that_render_bad_fail_each_task_without_retries(
    luma_emulator: Any,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    conf = {
        "aspect_ratio": "4:3",
        "prompt": "",  # overrides params.prompt
        "style": "manga",  # overrides params.style, beside a literal 16:9
        "source": f"file://{_text_named_png(tmp_path)}",
    }
    state, _, tis = run_dag(monkeypatch, DAGS / "bad_input_templated.py", "luma_bad_input_templated", conf)

    assert state == "failed"
    # Failed on the first try: the tasks have retries=2, a validation error spends none.
    assert {key: (ti.state, ti.try_number) for key, ti in tis.items()} == {
        key: ("failed", 1) for key in TEMPLATED
    }
    _assert_nothing_sent(luma_emulator)
    # dag.test() prints each task's error (to stdout, or to logging under pytest's capture); each
    # expected message names its own task's bad value.
    captured = capfd.readouterr()
    console = captured.out + captured.err + caplog.text
    for key, message in TEMPLATED.items():
        assert message in console, (key, message)
