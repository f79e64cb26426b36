"""Scripted faults on the wire: forced statuses, slow and late answers, drops, broken bodies, downloads."""

from __future__ import annotations

import io
import json
import time

import httpx
import pytest
from PIL import Image

from airflow_provider_luma.testing import Fault, LumaEmulator

from .conftest import api_client

POST = "POST /v1/generations"


@pytest.mark.parametrize(
    ("status", "detail"),
    [
        (400, "Prompt must be between 1 and 6000 characters"),
        (401, "Missing or invalid API key"),
        (402, "Insufficient credits. Please add credits to continue."),
        (403, "API client is suspended"),
        (404, "Generation not found"),
        (413, "Image exceeds 50 MB size limit"),
        (422, "source: invalid base64 data"),
        (500, "Internal server error"),
        (502, "Upstream service unavailable"),
        (503, "Image URL ingestion unavailable"),
    ],
)
def test_forced_status_creates_nothing(
    api: httpx.Client, luma_emulator: LumaEmulator, status: int, detail: str
) -> None:
    luma_emulator.add_fault(Fault(method="POST", status=status))
    response = api.post("/generations", json={"prompt": "x"})
    assert (response.status_code, response.json()) == (status, {"detail": detail})
    assert response.headers["X-API-Version"] == "2026-04-01"
    assert "Retry-After" not in response.headers
    assert luma_emulator.stats.generations_created == 0
    # Used up: the next request is normal.
    assert api.post("/generations", json={"prompt": "x"}).status_code == 201


def test_forced_status_on_get_with_custom_detail_and_headers(
    api: httpx.Client, luma_emulator: LumaEmulator
) -> None:
    generation_id = api.post("/generations", json={"prompt": "x"}).json()["id"]
    luma_emulator.add_fault(
        Fault(method="GET", status=503, retry_after=7, detail="busy", headers={"x-should-retry": "true"})
    )
    response = api.get(f"/generations/{generation_id}")
    assert (response.status_code, response.json()) == (503, {"detail": "busy"})
    assert response.headers["Retry-After"] == "7"
    assert response.headers["x-should-retry"] == "true"
    assert api.get(f"/generations/{generation_id}").status_code == 200


def test_forced_429_variants(api: httpx.Client, luma_emulator: LumaEmulator) -> None:
    luma_emulator.add_fault(Fault(method="POST", status=429, retry_after=2))
    luma_emulator.add_fault(Fault(method="POST", status=429, rate_limit="concurrency"))
    luma_emulator.add_fault(Fault(method="POST", status=429, rate_limit="abuse", retry_after=5))
    rpm, concurrency, abuse = (api.post("/generations", json={"prompt": "x"}) for _ in range(3))

    assert rpm.json() == {"detail": "Rate limit exceeded"}
    assert (
        rpm.headers["Retry-After"],
        rpm.headers["X-RateLimit-Limit"],
        rpm.headers["X-RateLimit-Remaining"],
    ) == ("2", "30", "0")
    assert "X-RateLimit-Reset" in rpm.headers
    assert concurrency.json() == {"detail": "Too many concurrent jobs"}
    assert concurrency.headers["Retry-After"] == "60"
    assert abuse.headers["Retry-After"] == "5"
    for response in (concurrency, abuse):
        assert not [h for h in response.headers if h.lower().startswith("x-ratelimit")]
    assert luma_emulator.stats.generations_created == 0


def test_faults_apply_times_in_fifo_order_per_method(api: httpx.Client, luma_emulator: LumaEmulator) -> None:
    luma_emulator.add_fault(Fault(method="POST", status=502, times=2))
    luma_emulator.add_fault(Fault(method="GET", status=500))
    luma_emulator.add_fault(Fault(method="POST", status=503))
    statuses = [api.post("/generations", json={"prompt": "x"}).status_code for _ in range(4)]
    assert statuses == [502, 502, 503, 201]
    assert api.get("/generations/x").status_code == 500
    assert luma_emulator.pending_faults() == []


def test_slow_answers_late_but_normally(api: httpx.Client, luma_emulator: LumaEmulator) -> None:
    luma_emulator.add_fault(Fault(method="POST", kind="slow", delay=0.3))
    started = time.monotonic()
    response = api.post("/generations", json={"prompt": "x"})
    assert time.monotonic() - started >= 0.3
    assert response.status_code == 201
    assert luma_emulator.stats.generations_created == 1


def test_slow_post_abandoned_by_the_client_creates_nothing(luma_emulator: LumaEmulator) -> None:
    luma_emulator.add_fault(Fault(method="POST", kind="slow", delay=5))
    with (
        api_client(luma_emulator, timeout=httpx.Timeout(10, read=0.2)) as client,
        pytest.raises(httpx.ReadTimeout),
    ):
        client.post("/generations", json={"prompt": "x"})
    # Wait (bounded) until the server has seen the hang-up; only then is "nothing created" a fact.
    deadline = time.monotonic() + 4  # well before the 5 s at which an ignoring server would create
    while not luma_emulator.stats.requests["POST abandoned"]:
        assert time.monotonic() < deadline, "the server never noticed the client hung up"
        time.sleep(0.01)
    assert luma_emulator.stats.requests[POST] == 1
    assert luma_emulator.stats.generations_created == 0


def test_read_timeout_creates_then_answers_too_late(luma_emulator: LumaEmulator) -> None:
    luma_emulator.add_fault(Fault(method="POST", kind="read_timeout", delay=5))
    with (
        api_client(luma_emulator, timeout=httpx.Timeout(10, read=0.2)) as client,
        pytest.raises(httpx.ReadTimeout),
    ):
        client.post("/generations", json={"prompt": "x"})
    # The fate the client could not see: it was created.
    assert luma_emulator.stats.generations_created == 1


def test_read_timeout_answer_arrives_after_the_delay(api: httpx.Client, luma_emulator: LumaEmulator) -> None:
    luma_emulator.add_fault(Fault(method="POST", kind="read_timeout", delay=0.2))
    started = time.monotonic()
    response = api.post("/generations", json={"prompt": "x"})
    assert time.monotonic() - started >= 0.2
    assert response.status_code == 201


def test_drop_closes_the_connection_before_creating(api: httpx.Client, luma_emulator: LumaEmulator) -> None:
    luma_emulator.add_fault(Fault(method="POST", kind="drop"))
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        api.post("/generations", json={"prompt": "x"})
    assert luma_emulator.stats.generations_created == 0
    assert api.post("/generations", json={"prompt": "x"}).status_code == 201


def test_drop_on_get(api: httpx.Client, luma_emulator: LumaEmulator) -> None:
    luma_emulator.add_fault(Fault(method="GET", kind="drop"))
    with pytest.raises(httpx.RemoteProtocolError):
        api.get("/generations/x")
    assert api.get("/generations/x").status_code == 404


def test_drop_after_create_sends_half_a_201(api: httpx.Client, luma_emulator: LumaEmulator) -> None:
    luma_emulator.add_fault(Fault(method="POST", kind="drop_after_create"))
    with pytest.raises(httpx.RemoteProtocolError, match=r"incomplete|complete message body"):
        api.post("/generations", json={"prompt": "x"})
    assert luma_emulator.stats.generations_created == 1
    assert len(luma_emulator.generation_ids()) == 1


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_malformed_body_is_broken_json(api: httpx.Client, luma_emulator: LumaEmulator, method: str) -> None:
    generation_id = api.post("/generations", json={"prompt": "x"}).json()["id"]
    luma_emulator.add_fault(Fault(method=method, kind="malformed"))  # type: ignore[arg-type]
    if method == "POST":
        response = api.post("/generations", json={"prompt": "x"})
        assert response.status_code == 201
        assert luma_emulator.stats.generations_created == 2
    else:
        response = api.get(f"/generations/{generation_id}")
        assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        response.json()


def _output_url(api: httpx.Client, emulator: LumaEmulator) -> str:
    generation_id = api.post("/generations", json={"prompt": "x"}).json()["id"]
    emulator.set_state(generation_id, "completed")
    url: str = api.get(f"/generations/{generation_id}").json()["output"][0]["url"]
    return url


def test_output_forced_403_is_an_s3_error(api: httpx.Client, luma_emulator: LumaEmulator) -> None:
    url = _output_url(api, luma_emulator)
    luma_emulator.add_fault(Fault(method="OUTPUT", status=403))
    refused = httpx.get(url)
    assert refused.status_code == 403
    assert "<Code>AccessDenied</Code>" in refused.text
    assert httpx.get(url).status_code == 200


def test_output_drop_midway(api: httpx.Client, luma_emulator: LumaEmulator) -> None:
    luma_emulator.configure(output_padding_bytes=1_000_000)
    url = _output_url(api, luma_emulator)
    luma_emulator.add_fault(Fault(method="OUTPUT", kind="drop_midway"))
    received = 0
    with pytest.raises(httpx.RemoteProtocolError), httpx.stream("GET", url) as response:
        assert response.headers["content-length"] == "1000000"
        for piece in response.iter_raw():
            received += len(piece)
    assert 0 < received < 1_000_000
    assert len(httpx.get(url).content) == 1_000_000


def test_output_malformed_is_a_truncated_image(api: httpx.Client, luma_emulator: LumaEmulator) -> None:
    url = _output_url(api, luma_emulator)
    luma_emulator.add_fault(Fault(method="OUTPUT", kind="malformed"))
    broken = httpx.get(url)
    whole = httpx.get(url)
    assert broken.status_code == 200
    assert len(broken.content) == len(whole.content) // 2
    with pytest.raises(OSError):
        Image.open(io.BytesIO(broken.content)).load()


def test_output_slow(api: httpx.Client, luma_emulator: LumaEmulator) -> None:
    url = _output_url(api, luma_emulator)
    luma_emulator.add_fault(Fault(method="OUTPUT", kind="slow", delay=0.2))
    started = time.monotonic()
    assert httpx.get(url).status_code == 200
    assert time.monotonic() - started >= 0.2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "POST"}, "needs a status or a kind"),
        ({"method": "PUT", "status": 500}, "method must be one of"),
        ({"method": "POST", "kind": "drop_midway"}, "does not apply to POST"),
        ({"method": "GET", "kind": "drop_after_create"}, "does not apply to GET"),
        ({"method": "POST", "status": 201}, "error status"),
        ({"method": "POST", "status": 500, "times": 0}, "at least 1"),
        ({"method": "GET", "kind": "proxy_after_create"}, "does not apply to GET"),
        ({"method": "OUTPUT", "status": 502, "proxy": True}, "proxy applies to"),
        ({"method": "POST", "kind": "slow", "proxy": True}, "proxy applies to"),
        ({"method": "POST", "kind": "proxy_after_create", "status": 201}, "error status"),
    ],
)
def test_invalid_faults_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Fault(**kwargs)


def test_request_counters(api: httpx.Client, luma_emulator: LumaEmulator) -> None:
    url = _output_url(api, luma_emulator)
    httpx.get(url)
    api.post("/generations", json={"prompt": ""})
    stats = luma_emulator.stats
    assert stats.requests == {POST: 2, "GET /v1/generations/{id}": 1, "GET output": 1}
    assert stats.generations_created == 1


# ------------------------------------------------------------------------ a gateway in front


@pytest.mark.parametrize("status", [429, 502, 503])
@pytest.mark.parametrize("method", ["POST", "GET"])
def test_a_proxy_page_has_none_of_the_apis_marks(
    api: httpx.Client, luma_emulator: LumaEmulator, status: int, method: str
) -> None:
    luma_emulator.add_fault(Fault(method=method, status=status, proxy=True))  # type: ignore[arg-type]

    response = api.request(method, "/generations" if method == "POST" else "/generations/x", json={})

    assert response.status_code == status and response.headers["content-type"].startswith("text/html")
    assert "nginx" in response.text and "detail" not in response.text
    assert "x-api-version" not in response.headers and "x-request-id" not in response.headers
    assert not [name for name in response.headers if name.startswith("x-luma-emulator")]
    assert luma_emulator.stats.generations_created == 0
    # The next answer is the API's own again, stamped as always.
    assert api.get("/generations/x").headers["x-api-version"] == "2026-04-01"


def test_a_proxy_page_after_create_hides_a_created_generation(
    api: httpx.Client, luma_emulator: LumaEmulator
) -> None:
    luma_emulator.add_fault(Fault(method="POST", kind="proxy_after_create"))
    luma_emulator.add_fault(Fault(method="POST", kind="proxy_after_create", status=503))

    answers = [api.post("/generations", json={"prompt": "x"}) for _ in range(2)]

    assert [answer.status_code for answer in answers] == [502, 503]
    assert all("x-api-version" not in answer.headers for answer in answers)
    assert "502 Bad Gateway" in answers[0].text
    assert luma_emulator.stats.generations_created == 2 and len(luma_emulator.generation_ids()) == 2


def test_a_proxy_page_after_an_invalid_post_creates_nothing(
    api: httpx.Client, luma_emulator: LumaEmulator
) -> None:
    luma_emulator.add_fault(Fault(method="POST", kind="proxy_after_create"))

    assert api.post("/generations", json={"prompt": ""}).status_code == 502
    assert luma_emulator.stats.generations_created == 0


def test_the_apis_404_is_stamped_with_its_detail_and_version(api: httpx.Client) -> None:
    response = api.get("/generations/d290f1ee-6c54-4b01-90e6-d701748f0851")

    assert (response.status_code, response.json()) == (404, {"detail": "Generation not found"})
    assert response.headers["x-api-version"] == "2026-04-01" and response.headers["x-request-id"]


def test_requests_carrying_a_cookie_are_counted(api: httpx.Client, luma_emulator: LumaEmulator) -> None:
    luma_emulator.add_fault(Fault(method="GET", kind="slow", headers={"Set-Cookie": "lb=a1; Path=/"}))

    first = api.get("/generations/x")
    api.get("/generations/x")  # httpx's default jar sends the cookie back
    api.post("/generations", json={"prompt": "x"}, headers={"Cookie": "lb=a1"})

    assert first.headers["set-cookie"] == "lb=a1; Path=/"
    assert luma_emulator.stats.requests_with_cookie == 2
