"""
The built wheel, installed into a fresh virtual environment, is seen by Airflow's own provider registry.

An editable install hides packaging mistakes (a module left out of the wheel, a wrong entry point), so this
builds the wheel, installs it next to the same Airflow as the development environment (pinned to this
environment's versions, so uv serves everything from its cache), and asks the ``airflow`` CLI, each call
with its own empty AIRFLOW_HOME.
"""

from __future__ import annotations

import configparser
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_luma import __version__
from airflow_provider_luma.hooks.luma import LumaHook

pytestmark = pytest.mark.packaging

REPO_ROOT = Path(__file__).resolve().parent.parent
DISTRIBUTION = "airflow-provider-luma"
PACKAGE = "airflow_provider_luma"


def _uv() -> str:
    """The uv binary: the ``uv`` package from the dev extra, else one on PATH."""
    try:
        from uv import find_uv_bin
    except ImportError:
        found = shutil.which("uv")
        if found is None:
            pytest.fail("uv is needed to build and install the wheel: install the dev extra")
        return found
    return str(find_uv_bin())


def _run(args: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    result = subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=300, check=False)
    assert result.returncode == 0, f"{args} failed ({result.returncode}):\n{result.stderr[-4000:]}"
    return result.stdout


@dataclass(frozen=True)
class FreshInstall:
    """The built wheel and the virtual environment it was installed into."""

    wheel: Path
    venv: Path
    workdir: Path

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def clean_env(self, airflow_home: Path) -> dict[str, str]:
        """The caller's environment without anything pointing at the test session's Airflow or venv."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AIRFLOW", "VIRTUAL_ENV", "PYTHON", "LUMA"))
        }
        env["AIRFLOW_HOME"] = str(airflow_home)
        env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
        return env


@pytest.fixture(scope="module")
def fresh_install(tmp_path_factory: pytest.TempPathFactory) -> FreshInstall:
    workdir = tmp_path_factory.mktemp("packaging")
    uv = _uv()
    dist = workdir / "dist"
    _run([uv, "build", "--wheel", "--quiet", "--out-dir", str(dist), str(REPO_ROOT)])
    (wheel,) = dist.glob("*.whl")

    # Same versions as this environment: the check is about our wheel, not about a newer resolve.
    constraints = workdir / "constraints.txt"
    pins = sorted(
        f"{dist_.metadata['Name']}=={dist_.version}"
        for dist_ in importlib.metadata.distributions()
        if dist_.metadata["Name"] and dist_.metadata["Name"].lower() != DISTRIBUTION
    )
    constraints.write_text("\n".join(pins) + "\n", encoding="utf-8")
    airflow_version = importlib.metadata.version("apache-airflow")

    venv = workdir / "venv"
    _run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)])
    _run(
        [
            uv,
            "pip",
            "install",
            "--quiet",
            "--python",
            str(venv / "bin" / "python"),
            "--constraint",
            str(constraints),
            str(wheel),
            f"apache-airflow=={airflow_version}",
        ]
    )
    return FreshInstall(wheel=wheel, venv=venv, workdir=workdir)


CLI_CALLS: dict[str, list[str]] = {
    "list": ["providers", "list", "-o", "json"],
    "hooks": ["providers", "hooks", "-o", "json"],
    "widgets": ["providers", "widgets", "-o", "json"],
    "behaviours": ["providers", "behaviours", "-o", "json"],
    "config": ["config", "list", "--section", "luma", "--defaults"],
}


@pytest.fixture(scope="module")
def cli(fresh_install: FreshInstall) -> dict[str, str]:
    """Standard output of each CLI call; run side by side, each with a private AIRFLOW_HOME."""

    def call(name: str) -> str:
        home = fresh_install.workdir / f"airflow-home-{name}"
        home.mkdir()
        return _run(
            [fresh_install.bin("airflow"), *CLI_CALLS[name]],
            env=fresh_install.clean_env(home),
            cwd=home,
        )

    with ThreadPoolExecutor(max_workers=3) as pool:
        outputs = dict(zip(CLI_CALLS, pool.map(call, CLI_CALLS), strict=True))
    return outputs


def _json(text: str) -> Any:
    # The CLI may print log lines before the document; the JSON is the last line that starts one.
    start = max(text.rfind("\n["), text.rfind("\n{"))
    return json.loads(text[start + 1 :] if start >= 0 else text)


def test_wheel_ships_typing_marker_emulator_and_entry_points(fresh_install: FreshInstall) -> None:
    with zipfile.ZipFile(fresh_install.wheel) as wheel:
        names = set(wheel.namelist())
        (entry_points_name,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        entry_points = configparser.ConfigParser()
        entry_points.read_string(wheel.read(entry_points_name).decode())
    assert f"{PACKAGE}/py.typed" in names
    assert f"{PACKAGE}/testing/__init__.py" in names
    assert f"{PACKAGE}/testing/pytest_plugin.py" in names
    assert not any(name.startswith("tests/") for name in names)
    assert (
        entry_points["apache_airflow_provider"]["provider_info"]
        == f"{PACKAGE}.get_provider_info:get_provider_info"
    )
    assert entry_points["pytest11"]["luma_emulator"] == f"{PACKAGE}.testing.pytest_plugin"


def test_fresh_environment_imports_the_wheel_not_the_source_tree(fresh_install: FreshInstall) -> None:
    home = fresh_install.workdir / "airflow-home-import"
    home.mkdir()
    location = _run(
        [fresh_install.bin("python"), "-c", f"import {PACKAGE}; print({PACKAGE}.__file__)"],
        env=fresh_install.clean_env(home),
        cwd=home,
    ).strip()
    assert Path(location).is_relative_to(fresh_install.venv)


def test_providers_list_shows_the_provider(cli: dict[str, str]) -> None:
    providers = {row["package_name"]: row for row in _json(cli["list"])}
    assert providers[DISTRIBUTION]["version"] == __version__


def test_providers_hooks_knows_the_luma_connection_type(cli: dict[str, str]) -> None:
    hooks = {row["connection_type"]: row for row in _json(cli["hooks"])}
    assert hooks["luma"]["class"] == f"{LumaHook.__module__}.LumaHook"
    assert hooks["luma"]["package_name"] == DISTRIBUTION
    assert hooks["luma"]["conn_id_attribute_name"] == "luma_conn_id"


def test_connection_form_fields_are_declared(cli: dict[str, str]) -> None:
    widgets = {
        row["connection_parameter_name"]: row
        for row in _json(cli["widgets"])
        if row["package_name"] == DISTRIBUTION
    }
    expected = {f"extra__luma__{name}" for name in LumaHook.conn_fields()}
    assert expected, "LumaHook declares no connection extras"
    assert set(widgets) == expected
    behaviours = {row["field_behaviours"] for row in _json(cli["behaviours"])}
    assert "luma" in behaviours


def test_luma_config_section_is_visible(cli: dict[str, str]) -> None:
    lines = cli["config"].splitlines()
    assert "[luma]" in lines
    assert "# output_path = " in lines
    assert "# output_conn_id = " in lines
