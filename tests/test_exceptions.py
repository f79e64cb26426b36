"""The error tree: status mapping, retryability, Retry-After parsing, and messages that carry ids."""

from __future__ import annotations

import time
from email.utils import formatdate

import pytest

from airflow_provider_luma.exceptions import (
    LumaAPIError,
    LumaAuthenticationError,
    LumaError,
    LumaGenerationFailedError,
    LumaGenerationTimeoutError,
    LumaInsufficientFundsError,
    LumaInvalidRequestError,
    LumaNotFoundError,
    LumaOutputDownloadError,
    LumaOutputNotAvailableError,
    LumaPayloadTooLargeError,
    LumaPermissionDeniedError,
    LumaRateLimitError,
    LumaRequestValidationError,
    LumaServerError,
    LumaSubmissionUnknownError,
    LumaTransportError,
    LumaUnexpectedResponseError,
    api_error_from_response,
    parse_retry_after,
)


@pytest.mark.parametrize(
    ("status", "error_class", "retryable"),
    [
        (400, LumaInvalidRequestError, False),
        (401, LumaAuthenticationError, False),
        (402, LumaInsufficientFundsError, False),
        (403, LumaPermissionDeniedError, False),
        (404, LumaNotFoundError, False),
        (413, LumaPayloadTooLargeError, False),
        (422, LumaInvalidRequestError, False),
        (429, LumaRateLimitError, True),
        (500, LumaServerError, True),
        (502, LumaServerError, True),
        (503, LumaServerError, True),
        (504, LumaServerError, True),
        (409, LumaUnexpectedResponseError, False),
    ],
)
def test_api_error_from_response(status: int, error_class: type[LumaAPIError], retryable: bool) -> None:
    error = api_error_from_response(status, "the detail", "req-1", {})
    assert type(error) is error_class and isinstance(error, LumaError)
    assert (error.status_code, error.detail, error.request_id, error.retryable) == (
        status,
        "the detail",
        "req-1",
        retryable,
    )
    assert str(error) == f"HTTP {status}: the detail (request id req-1)"


def test_rate_limit_error_carries_retry_after() -> None:
    error = api_error_from_response(429, "Too many concurrent jobs", "r", {"retry-after": "60"})
    assert isinstance(error, LumaRateLimitError) and error.retry_after == 60


def test_missing_request_id_says_unknown() -> None:
    assert "request id unknown" in str(api_error_from_response(500, "x", None, {}))


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "12"}, 12.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"Retry-After": "-3"}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "nan"}, None),
        ({"Retry-After": "inf"}, None),
        ({}, None),
        ({"X-RateLimit-Reset": "not a time"}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers) == expected


def test_parse_retry_after_from_reset_time_and_http_date() -> None:
    assert 9 <= parse_retry_after({"X-RateLimit-Reset": str(time.time() + 10)}) <= 10  # type: ignore[operator]
    assert parse_retry_after({"X-RateLimit-Reset": str(time.time() - 10)}) == 0.0
    http_date = formatdate(time.time() + 30, usegmt=True)
    assert 28 <= parse_retry_after({"Retry-After": http_date}) <= 30  # type: ignore[operator]
    # Retry-After wins over the reset time when both are sent.
    assert parse_retry_after({"Retry-After": "5", "X-RateLimit-Reset": str(time.time() + 50)}) == 5.0


def test_request_validation_error_names_the_field() -> None:
    error = LumaRequestValidationError("aspect_ratio", "invalid value '4:3'")
    assert error.field == "aspect_ratio" and str(error) == "aspect_ratio: invalid value '4:3'"
    assert isinstance(error, ValueError) and not error.retryable


def test_submission_unknown_error_carries_the_request_id_and_is_not_retryable() -> None:
    error = LumaSubmissionUnknownError("req-77", "ReadTimeout")
    assert error.request_id == "req-77" and "req-77" in str(error) and "ReadTimeout" in str(error)
    assert "not resubmitted" in str(error) and not error.retryable


def test_transport_error_is_retryable_and_keeps_the_request_id() -> None:
    error = LumaTransportError("GET /generations/x failed", request_id="req-3")
    assert error.retryable and error.request_id == "req-3"
    assert LumaTransportError("no id").request_id is None


def test_a_transport_fault_that_repeats_identically_is_not_retryable() -> None:
    # A request HTTP forbids sending fails the same way on every try: no task retry can help.
    assert not LumaTransportError("illegal header", request_id="r", retryable=False).retryable


def test_generation_failed_error() -> None:
    error = LumaGenerationFailedError("g1", "generation_failed", "Generation failed", retryable=True)
    assert error.retryable and "g1" in str(error) and "generation_failed" in str(error)
    assert not LumaGenerationFailedError("g1", None, None, retryable=False).retryable
    assert "unknown: no reason given" in str(LumaGenerationFailedError("g1", None, None, retryable=False))


def test_generation_timeout_error() -> None:
    error = LumaGenerationTimeoutError("g2", "processing")
    assert error.retryable and "g2" in str(error) and "processing" in str(error) and "billed" in str(error)


def test_output_errors() -> None:
    not_ready = LumaOutputNotAvailableError("g3", "queued", None, "the generation is not completed")
    assert not_ready.retryable and "state queued" in str(not_ready) and "failure code none" in str(not_ready)
    failed = LumaOutputNotAvailableError(
        "g3", "failed", "content_moderated", "the generation is not completed"
    )
    assert not failed.retryable and "content_moderated" in str(failed)
    assert not LumaOutputDownloadError(403, "refused", None).retryable
    assert LumaOutputDownloadError(503, "storage down", None).retryable
