"""
The one place an API answer becomes a :class:`~airflow_provider_luma.models.Generation`, a file or an error.

Which answers may be sent again is the retry policy's (:mod:`._retry`); what each status means is
:func:`~airflow_provider_luma.exceptions.api_error_from_response`'s. This module reads the answer
the policy accepted: its ``detail`` (quoted safely), whether a 404 is the API's own, and what a POST
whose answer cannot be trusted leaves behind (a submission of unknown fate).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from airflow_provider_luma._redaction import redact_secrets
from airflow_provider_luma.exceptions import (
    LumaSubmissionUnknownError,
    LumaUnexpectedResponseError,
    api_error_from_response,
)
from airflow_provider_luma.hooks._retry import is_api_answer, proves_nothing_queued
from airflow_provider_luma.models import Generation

if TYPE_CHECKING:
    import httpx

#: The API's own answer to a GET of a generation that does not exist.
NOT_FOUND_DETAIL = "Generation not found"
#: An HTML tag, dropped from a gateway's error page before it is quoted.
_TAG = re.compile(r"<[^>]*>")


def error_detail(response: httpx.Response) -> str:
    """
    The ``detail`` of an error body, safe to put in an exception message (and so in a task log).

    A string ``detail`` is the API's own sentence. Anything else (a framework's list of validation
    errors, a proxy's page) may echo the request back: only the error locations and messages are
    kept, and whatever looks like a URL signature or a key is cut out. A gateway's HTML page is
    reduced to its words on one line ("502 Bad Gateway ... nginx").
    """
    try:
        body = response.json()
    except ValueError:
        text = response.text[:2000]
        if "html" in response.headers.get("content-type", ""):
            text = _TAG.sub(" ", text)
        text = " ".join(text.split())[:200]
        return redact_secrets(text or response.reason_phrase or f"HTTP {response.status_code}")
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        detail = [
            {key: item[key] for key in ("loc", "msg") if key in item} if isinstance(item, dict) else item
            for item in detail
        ]
    return redact_secrets(json.dumps(detail if detail is not None else body)[:500])


def is_api_not_found(response: httpx.Response, detail: str, not_found: str = NOT_FOUND_DETAIL) -> bool:
    """Whether a 404 is the API's own "no such generation" (not a gateway's, not a wrong base URL's)."""
    return detail == not_found and is_api_answer(response)


def answer_body(
    response: httpx.Response,
    request_id: str,
    *,
    creates: str | None,
    not_found: str = NOT_FOUND_DETAIL,
) -> dict[str, Any]:
    """
    The JSON object of an accepted answer, or the exception it stands for: the one place API answers
    are read, for generations and files alike.

    An error from a call that creates something (``creates``: a POST) that would invite a retry
    (429, 5xx) but does not prove nothing was created (a 500, a gateway's 504, a proxy's 502/503
    page: :func:`._retry.proves_nothing_queued`) leaves the object possibly created: its fate is
    unknown. A creating call that succeeded but whose body cannot be read has created something we
    cannot name: that is a lost answer too.
    """
    answered_id = response.headers.get("x-request-id") or request_id
    if not response.is_success:
        detail = error_detail(response)
        if response.status_code == 404 and not is_api_not_found(response, detail, not_found):
            # Only the API's own 404 says the object does not exist. A gateway's (an ingress being
            # redeployed) says nothing: read as "gone", it would make a reattaching task pay again.
            raise LumaUnexpectedResponseError(
                404, f"HTTP 404 from something in front of the API: {detail}", answered_id, retryable=True
            )
        error = api_error_from_response(response.status_code, detail, answered_id, response.headers)
        if creates is not None and error.retryable and not proves_nothing_queued(response):
            origin = "" if is_api_answer(response) else " from something in front of the API"
            raise LumaSubmissionUnknownError(
                request_id, f"HTTP {response.status_code}{origin}: {error.detail}", creates=creates
            ) from error
        raise error
    try:
        try:
            body = response.json()
        except ValueError as error:
            raise LumaUnexpectedResponseError(
                response.status_code, f"the body is not JSON ({error})", answered_id
            ) from error
        if not isinstance(body, dict):
            raise LumaUnexpectedResponseError(
                response.status_code, "the body is not a JSON object", answered_id
            )
    except LumaUnexpectedResponseError as error:
        if creates is not None:
            raise LumaSubmissionUnknownError(
                request_id, f"unreadable {response.status_code} answer", creates=creates
            ) from error
        raise
    return body


def generation_from(response: httpx.Response, request_id: str, method: str) -> Generation:
    """
    The answer of a generation call as a :class:`Generation`, or its exception (:func:`answer_body`).

    A POST's generation carries the request id it was sent with (the API echoes it), so the
    submission can be told from the GETs that follow.
    """
    submitted = method == "POST"
    body = answer_body(response, request_id, creates="generation" if submitted else None)
    answered_id = response.headers.get("x-request-id") or request_id
    try:
        return Generation.from_json(body, request_id if submitted else answered_id)
    except LumaUnexpectedResponseError as error:
        if submitted:
            raise LumaSubmissionUnknownError(
                request_id, f"unreadable {response.status_code} answer"
            ) from error
        raise
