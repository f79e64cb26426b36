"""
The official SDK's own test suite (``luma_agents`` 0.5.0, ``tests/api_resources``), run against the emulator.

Stainless generates those tests from Luma's OpenAPI spec and runs them against Prism, a schema mock that
answers any request of the right shape with an example. Pointed at the emulator instead, they show which of
the SDK's calls our emulator answers the way the SDK expects. The tables below say, for every server-backed
SDK test, whether it must pass against the emulator or only makes sense against a schema mock, and why.

- ``EXPECTED_PASS`` tests must pass against the emulator, and must actually reach it.
- ``SCHEMA_MOCK_ONLY`` tests send what a real server refuses, such as an id that was never created. They
  must fail, and with the error a real server would give. If one passes, either the emulator now accepts
  what the real API refuses, or the table is stale.
- ``CLIENT_SIDE`` tests are decided by the SDK before any request is sent. They must pass and send nothing.

Every SDK test in ``tests/api_resources`` must appear in exactly one table, on all five of its clients. So a
new or renamed SDK test fails here until someone classifies it. The rest of the SDK's suite
(``test_client.py``, ``test_models.py`` and so on) is left out: it is respx-mocked or pure unit tests, and
it passes with nothing listening at ``TEST_API_BASE_URL``.

The sdist comes from ``make sdk-sdist`` (a prerequisite of ``make unit`` and ``make floor``) and is
unpacked into ``.cache/``. Without it this module skips locally and fails in CI.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from airflow_provider_luma.testing import LumaEmulator

SDK_VERSION = "0.5.0"
REPO_ROOT = Path(__file__).resolve().parents[2]
SDIST_DIR = REPO_ROOT / ".cache" / f"luma-agents-{SDK_VERSION}"
MAKE_TARGET = "make sdk-sdist"
SHIM = Path(__file__).with_name("sdk_suite_shim.py")
SHIM_MODULE = "luma_sdk_suite_shim"

#: Each test in tests/api_resources runs once per client: the sync ``client`` fixture with loose or strict
#: response validation, and the async one with loose, strict, or the aiohttp transport (strict).
VARIANTS = frozenset({"sync-loose", "sync-strict", "async-loose", "async-strict", "async-aiohttp"})

#: Reaches the emulator and must pass on every client.
EXPECTED_PASS: frozenset[str] = frozenset(
    {
        # A plain text-to-image create: 201 and a Generation (the strict clients check its schema).
        "test_generations.py::test_method_create",
        "test_generations.py::test_raw_response_create",
        "test_generations.py::test_streaming_response_create",
        # Lists the (empty) files of a fresh account: 200 and a FileList.
        "test_files.py::test_method_list",
        "test_files.py::test_raw_response_list",
        "test_files.py::test_streaming_response_list",
    }
)

#: Sends nothing: the SDK raises ValueError for an empty id before it builds a request.
CLIENT_SIDE: frozenset[str] = frozenset(
    {
        "test_generations.py::test_path_params_get",
        "test_files.py::test_path_params_get",
        "test_files.py::test_path_params_delete",
        "test_files.py::test_path_params_complete",
    }
)


@dataclass(frozen=True)
class Refused:
    """An SDK test that only passes against a schema mock: why a real server refuses it, and how."""

    reason: str
    #: Searched in the failure's one-line summary. It pins both the status and the ``detail``, so the
    #: refusal is known to come from the emulator's rule, not from, say, a missing route's 404.
    error: str


_NO_SUCH_GENERATION = Refused(
    "gets 182bd5e5-6e1a-4fe4-a799-aa6d9a6ab26e, which was never created: a real server answers 404",
    r"NotFoundError: Error code: 404 - \{'detail': 'Generation not found'\}",
)


def _no_such_file(action: str) -> Refused:
    return Refused(
        f"{action} 182bd5e5-6e1a-4fe4-a799-aa6d9a6ab26e, a file that does not exist: a real server "
        "answers 404",
        r"NotFoundError: Error code: 404 - \{'detail': 'File not found'\}",
    )


_NO_SUCH_FILE_GET = _no_such_file("gets")
_NO_SUCH_FILE_DELETE = _no_such_file("deletes")
_NO_SUCH_FILE_COMPLETE = _no_such_file("completes")

_MIME_TYPE_X = Refused(
    "creates a file with mime_type='x' and size_bytes=1: the real API takes only JPEG, PNG, WebP and GIF",
    r"BadRequestError: Error code: 400 - \{'detail': \"Unsupported mime_type 'x'",
)

SCHEMA_MOCK_ONLY: dict[str, Refused] = {
    "test_generations.py::test_method_create_with_all_params": Refused(
        "sends every field at once: a source with type='image', image refs naming url, data, file_id and "
        "generation_id together, video and layering options on uni-1; the real API answers 400",
        # Any 400: the request breaks several rules at once, and which one is named first is the
        # validator's order, not part of the API.
        r"BadRequestError: Error code: 400 - ",
    ),
    "test_generations.py::test_method_get": _NO_SUCH_GENERATION,
    "test_generations.py::test_raw_response_get": _NO_SUCH_GENERATION,
    "test_generations.py::test_streaming_response_get": _NO_SUCH_GENERATION,
    "test_files.py::test_method_create": _MIME_TYPE_X,
    "test_files.py::test_raw_response_create": _MIME_TYPE_X,
    "test_files.py::test_streaming_response_create": _MIME_TYPE_X,
    "test_files.py::test_method_create_with_all_params": Refused(
        "mime_type='x' as above, and an expires_at in 2019, already past",
        _MIME_TYPE_X.error,
    ),
    "test_files.py::test_method_list_with_all_params": Refused(
        "passes cursor='cursor', which no server issued: keyset pagination cannot decode it, so the "
        "emulator answers 400 (the real API's answer is undocumented; Prism takes any string)",
        r"BadRequestError: Error code: 400 - \{'detail': 'Invalid cursor'\}",
    ),
    "test_files.py::test_method_get": _NO_SUCH_FILE_GET,
    "test_files.py::test_raw_response_get": _NO_SUCH_FILE_GET,
    "test_files.py::test_streaming_response_get": _NO_SUCH_FILE_GET,
    "test_files.py::test_method_delete": _NO_SUCH_FILE_DELETE,
    "test_files.py::test_raw_response_delete": _NO_SUCH_FILE_DELETE,
    "test_files.py::test_streaming_response_delete": _NO_SUCH_FILE_DELETE,
    "test_files.py::test_method_complete": _NO_SUCH_FILE_COMPLETE,
    "test_files.py::test_raw_response_complete": _NO_SUCH_FILE_COMPLETE,
    "test_files.py::test_streaming_response_complete": _NO_SUCH_FILE_COMPLETE,
}


@dataclass(frozen=True)
class Outcome:
    """One SDK test on one client: passed/failed/error/skipped, its one-line error, its ``/v1`` requests."""

    outcome: str
    message: str
    requests: int | None


@dataclass(frozen=True)
class SuiteRun:
    """What the SDK's run reported, by table key (``module::test``) and then by client variant."""

    by_key: dict[str, dict[str, Outcome]]
    summary: str


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _sdist() -> Path:
    if (SDIST_DIR / "tests" / "api_resources").is_dir():
        return SDIST_DIR
    message = f"the luma-agents {SDK_VERSION} sdist is not unpacked at {SDIST_DIR}: run `{MAKE_TARGET}`"
    if _in_ci():
        # In CI the make target always runs first (the test targets depend on it), so a missing sdist means a
        # broken build. Skipping would quietly drop the whole check.
        pytest.fail(message)
    pytest.skip(message)


_NODEID = re.compile(
    r"^tests/api_resources/(?P<module>[^/:]+)::(?P<cls>Test\w+)::(?P<test>\w+)\[(?P<param>\w+)\]$"
)


def _key_and_variant(nodeid: str) -> tuple[str, str]:
    match = _NODEID.match(nodeid)
    assert match is not None, f"unexpected SDK test id {nodeid!r}"
    kind = "async" if match["cls"].startswith("TestAsync") else "sync"
    return f"{match['module']}::{match['test']}", f"{kind}-{match['param']}"


def _run_sdk_suite(sdist: Path, scratch: Path, emulator: LumaEmulator) -> SuiteRun:
    # Copy only what the run needs: the tests and the pytest settings in pyproject.toml. Leaving src/ behind
    # means the installed SDK is the one under test.
    root = scratch / "sdk"
    shutil.copytree(sdist / "tests", root / "tests")
    shutil.copy2(sdist / "pyproject.toml", root / "pyproject.toml")
    shim_dir = scratch / "shim"
    shim_dir.mkdir()
    shutil.copy2(SHIM, shim_dir / f"{SHIM_MODULE}.py")
    report = scratch / "report.json"

    env = {
        key: value
        for key, value in os.environ.items()
        # Nothing of the outer run and no SDK settings of the environment may leak into the SDK's run.
        if key not in {"PYTEST_ADDOPTS", "LUMA_AGENTS_API_KEY", "LUMA_BASE_URL", "LUMA_CUSTOM_HEADERS"}
    }
    env.update(
        {
            # Only the plugins the SDK's suite needs. Ours (pytest-timeout, the emulator plugin...) stay out.
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
            "PYTHONPATH": str(shim_dir),
            "PYTHONDONTWRITEBYTECODE": "1",
            "TEST_API_BASE_URL": emulator.base_url,
            "LUMA_SDK_SUITE_API_KEY": emulator.api_key,
            "LUMA_SDK_SUITE_CONTROL_URL": f"{emulator.root_url}/_emulator",
            "LUMA_SDK_SUITE_REPORT": str(report),
        }
    )
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        SHIM_MODULE,
        # The SDK's conftest imports pytest_asyncio, and its async tests need the plugin.
        "-p",
        "pytest_asyncio.plugin",
        "-p",
        "no:cacheprovider",
        # The SDK's settings apply as shipped, except its addopts' `-n auto`. That needs pytest-xdist, and
        # these tests take about two seconds one after another.
        "-o",
        "addopts=",
        "-q",
        "--tb=line",
        "tests/api_resources",
    ]
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=180)
    # 0: all passed; 1: some failed, as SCHEMA_MOCK_ONLY ones must. Anything else means the run itself broke.
    output = (
        f"exit {result.returncode}\n--- stdout\n{result.stdout[-6000:]}\n--- stderr\n{result.stderr[-4000:]}"
    )
    assert result.returncode in (0, 1), f"the SDK's test run broke:\n{output}"
    data: dict[str, Any] = json.loads(report.read_text(encoding="utf-8"))
    assert data["auth_token_patched"], output

    by_key: dict[str, dict[str, Outcome]] = {}
    for nodeid, result_ in data["results"].items():
        key, variant = _key_and_variant(nodeid)
        by_key.setdefault(key, {})[variant] = Outcome(
            result_["outcome"], result_["message"], data["requests"].get(nodeid)
        )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    return SuiteRun(by_key, summary)


@pytest.fixture(scope="module")
def sdk_suite(luma_emulator_server: LumaEmulator, tmp_path_factory: pytest.TempPathFactory) -> SuiteRun:
    """One run of the SDK's suite for the whole module, against the session's emulator."""
    sdist = _sdist()
    installed = importlib.metadata.version("luma-agents")
    assert installed == SDK_VERSION, (
        f"luma-agents {installed} is installed, but the tables here classify the {SDK_VERSION} tests: "
        "bump SDK_VERSION, the Makefile's sdist pin and the tables together"
    )
    luma_emulator_server.reset()
    try:
        return _run_sdk_suite(sdist, tmp_path_factory.mktemp("sdk-suite"), luma_emulator_server)
    finally:
        # The shim leaves the last SDK test's state behind; the next test of ours must not see it.
        luma_emulator_server.reset()


def _describe(outcomes: dict[str, Outcome]) -> str:
    return "\n".join(
        f"  {variant}: {o.outcome}, {o.requests} request(s){': ' + o.message if o.message else ''}"
        for variant, o in sorted(outcomes.items())
    )


def _outcomes(sdk_suite: SuiteRun, key: str) -> dict[str, Outcome]:
    if key not in sdk_suite.by_key:
        pytest.fail(
            f"the SDK's run has no test {key}: renamed or removed? ({sdk_suite.summary})", pytrace=False
        )
    return sdk_suite.by_key[key]


def test_tables_are_disjoint() -> None:
    keys = [*EXPECTED_PASS, *CLIENT_SIDE, *SCHEMA_MOCK_ONLY]
    assert len(keys) == len(set(keys)), sorted(k for k in set(keys) if keys.count(k) > 1)


def test_every_sdk_test_is_classified(sdk_suite: SuiteRun) -> None:
    classified = EXPECTED_PASS | CLIENT_SIDE | set(SCHEMA_MOCK_ONLY)
    ran = set(sdk_suite.by_key)
    problems = [
        f"{key} is in no table here; classify it:\n{_describe(sdk_suite.by_key[key])}"
        for key in sorted(ran - classified)
    ]
    problems += [
        f"{key} is in a table here, but the SDK has no such test" for key in sorted(classified - ran)
    ]
    problems += [
        f"{key} did not run on {sorted(VARIANTS - set(outcomes))}"
        for key, outcomes in sorted(sdk_suite.by_key.items())
        if set(outcomes) != VARIANTS
    ]
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.mark.parametrize("key", sorted(EXPECTED_PASS))
def test_expected_pass(sdk_suite: SuiteRun, key: str) -> None:
    bad = {v: o for v, o in _outcomes(sdk_suite, key).items() if o.outcome != "passed" or not o.requests}
    if bad:
        pytest.fail(f"{key} must pass against the emulator and reach it:\n{_describe(bad)}", pytrace=False)


@pytest.mark.parametrize("key", sorted(CLIENT_SIDE))
def test_client_side(sdk_suite: SuiteRun, key: str) -> None:
    bad = {v: o for v, o in _outcomes(sdk_suite, key).items() if o.outcome != "passed" or o.requests}
    if bad:
        pytest.fail(f"{key} must pass without sending a request:\n{_describe(bad)}", pytrace=False)


@pytest.mark.parametrize("key", sorted(SCHEMA_MOCK_ONLY))
def test_schema_mock_only(sdk_suite: SuiteRun, key: str) -> None:
    refused = SCHEMA_MOCK_ONLY[key]
    bad = {
        v: o
        for v, o in _outcomes(sdk_suite, key).items()
        # Reaching the emulator matters here too: the refusal must be the server's, not the SDK's.
        if o.outcome != "failed" or not o.requests or not re.search(refused.error, o.message)
    }
    if bad:
        pytest.fail(
            f"{key} must be refused as a real server refuses it ({refused.reason}), with an error "
            f"matching {refused.error!r}. If it passed, the emulator now accepts what the real API "
            f"refuses, or this table is stale:\n{_describe(bad)}",
            pytrace=False,
        )
