"""
A throw-away Airflow deployment for end-to-end tests: the real services as subprocesses.

``AirflowServices`` owns a private AIRFLOW_HOME on SQLite, migrates it, starts the api-server,
scheduler (LocalExecutor), triggerer and dag-processor, each in its own process group with its
output in a log file, and stops them again by process group. Every listener is on 127.0.0.1: the
api-server is given an explicit host and the log servers of the scheduler and triggerer are not
started. By default the simple auth manager runs in its "all admins" mode, which hands out a token
without credentials; with ``login`` it has one real user (an admin) whose password the harness
writes, so a person can log into the UI and the REST API is used with that user's token.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(what: str, probe: Callable[[], T | None], *, timeout: float, interval: float = 0.5) -> T:
    """Call ``probe`` until it returns something other than ``None``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"Timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Service:
    """One running Airflow service and the file its output goes to."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class RunProgress:
    """
    Where a DAG run's task instances are, each map index counted: what someone watching a run wants
    in one line. A mapped task adds its instances once it expands, so ``total`` grows during a run.
    """

    total: int
    done: int
    deferred: int
    running: int
    failed: int

    @classmethod
    def of(cls, states: Iterable[str | None]) -> RunProgress:
        counts = Counter(states)
        return cls(
            total=sum(counts.values()),
            done=counts["success"] + counts["skipped"],
            deferred=counts["deferred"],
            running=counts["running"],
            # An upstream failure is the same failure seen downstream: the watcher wants both counted.
            failed=counts["failed"] + counts["upstream_failed"],
        )

    def __str__(self) -> str:
        return (
            f"{self.done}/{self.total} done, {self.deferred} deferred, {self.running} running, "
            f"{self.failed} failed"
        )


@dataclass
class AirflowServices:
    """
    A private Airflow deployment of real services.

    :param home: the AIRFLOW_HOME (created if missing); logs and the SQLite database live there.
    :param dags_folder: the folder the dag-processor parses.
    :param extra_env: more environment for every service (connections, provider options).
    :param port: the api-server's port on 127.0.0.1 (a free one by default).
    :param login: ``(username, password)`` of the one admin user, instead of the "all admins" mode.
    """

    home: Path
    dags_folder: Path
    extra_env: Mapping[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    login: tuple[str, str] | None = None
    services: list[Service] = field(default_factory=list)
    _token: str | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database(self) -> Path:
        """The SQLite metadata database."""
        return self.home / "airflow.db"

    @property
    def task_logs(self) -> Path:
        return self.home / "logs"

    def env(self) -> dict[str, str]:
        """The environment of every service: nothing inherited from the test process's Airflow set-up."""
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("AIRFLOW_", "AIRFLOW__")) and name != "AIRFLOW_HOME"
        }
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                # Two task processes at most: the machine is small and the DAG is a chain.
                "AIRFLOW__CORE__PARALLELISM": "2",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.database}",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API__WORKERS": "1",
                # One secret for the api-server that signs the workers' tokens and everyone checking them.
                "AIRFLOW__API_AUTH__JWT_SECRET": "luma-e2e-jwt-secret-not-for-production",
                # Airflow 3.1 leaves ``iss`` unset and PyJWT 2.10+ refuses to sign such a token (a 500).
                "AIRFLOW__API_AUTH__JWT_ISSUER": "luma-airflow-services",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
                "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "1",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.login is not None:
            env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] = "False"
            env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = f"{self.login[0]}:admin"
            env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] = str(self._passwords_file)
        env.update(self.extra_env)
        return env

    @property
    def _passwords_file(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json"

    def airflow(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run one Airflow CLI command to completion; raises with its output if it fails."""
        result = subprocess.run(
            [AIRFLOW, *args],
            env=self.env(),
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"airflow {' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
            )
        return result

    def _spawn(self, name: str, *args: str) -> Service:
        log_path = self.home / f"{name}.log"
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                [AIRFLOW, *args],
                env=self.env(),
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                # Its own process group: stopping it also stops the workers and parsers it forked.
                start_new_session=True,
            )
        service = Service(name, process, log_path)
        self.services.append(service)
        return service

    def start(self, *, timeout: float = 150) -> None:
        """Migrate the database, start the four services and wait until the API answers."""
        self.home.mkdir(parents=True, exist_ok=True)
        if self.login is not None:
            # The simple auth manager reads {user: password}; written before any service starts.
            self._passwords_file.write_text(json.dumps({self.login[0]: self.login[1]}))
            self._passwords_file.chmod(0o600)
        self.airflow("db", "migrate", timeout=timeout)
        self._spawn(
            "api-server", "api-server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"
        )
        self._spawn("scheduler", "scheduler", "--skip-serve-logs")
        self._spawn("triggerer", "triggerer", "--skip-serve-logs")
        self._spawn("dag-processor", "dag-processor")
        wait_for("the api-server to answer", self._healthy, timeout=timeout)

    def _healthy(self) -> bool | None:
        self.raise_if_exited()
        try:
            response = httpx.get(f"{self.base_url}/api/v2/monitor/health", timeout=5)
        except httpx.TransportError:
            return None
        return True if response.status_code == 200 else None

    def raise_if_exited(self) -> None:
        """Fail at once, naming the service, when one of them died (instead of waiting out a deadline)."""
        for service in self.services:
            code = service.process.poll()
            if code is not None:
                raise RuntimeError(f"airflow {service.name} exited with {code}:\n{service.tail()}")

    def stop(self, *, grace: float = 20) -> None:
        """SIGTERM every service's process group, then SIGKILL whatever is still there after ``grace``."""
        for service in self.services:
            _signal_group(service.process, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for service in self.services:
            with contextlib.suppress(subprocess.TimeoutExpired):
                service.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            # Children (task runners, parser processes) may outlive their parent: end the group.
            _signal_group(service.process, signal.SIGKILL)
            service.process.wait(timeout=10)

    def log_tails(self, lines: int = 60) -> str:
        """The end of every service's log, for a failing test's report."""
        return "\n".join(
            f"----- {service.name} (exit {service.process.poll()}) -----\n{service.tail(lines)}"
            for service in self.services
        )

    # ----- REST API (v2) -----

    def auth_headers(self) -> dict[str, str]:
        if self._token is None:
            if self.login is None:
                response = httpx.get(f"{self.base_url}/auth/token", timeout=30)
            else:
                credentials = {"username": self.login[0], "password": self.login[1]}
                response = httpx.post(f"{self.base_url}/auth/token", json=credentials, timeout=30)
            response.raise_for_status()
            self._token = str(response.json()["access_token"])
        return {"Authorization": f"Bearer {self._token}"}

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One REST API call (``path`` below ``/api/v2``) with a bearer token."""
        return httpx.request(
            method, f"{self.base_url}/api/v2{path}", headers=self.auth_headers(), timeout=30, **kwargs
        )

    def api_json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.api(method, path, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json()

    def wait_for_dag(self, dag_id: str, *, timeout: float = 120) -> dict[str, Any]:
        """Wait until the dag-processor has parsed ``dag_id`` and the API knows it."""

        def parsed() -> dict[str, Any] | None:
            self.raise_if_exited()
            response = self.api("GET", f"/dags/{dag_id}")
            if response.status_code == 200:
                return dict(response.json())
            errors = self.api("GET", "/importErrors")
            if errors.status_code == 200 and errors.json().get("total_entries"):
                raise RuntimeError(f"DAG import errors: {errors.json()['import_errors']}")
            return None

        return wait_for(f"DAG {dag_id} to be parsed", parsed, timeout=timeout)

    def trigger(
        self, dag_id: str, conf: Mapping[str, Any] | None = None, *, logical_date: str | None = None
    ) -> str:
        """Start a run of ``dag_id`` now and unpause it; returns the run id."""
        body = {"logical_date": logical_date, "conf": conf or {}}
        run = self.api_json("POST", f"/dags/{dag_id}/dagRuns", json=body)
        # Only now: unpaused first, a scheduled DAG could get its own run for ``logical_date`` in between.
        self.unpause(dag_id)
        return str(run["dag_run_id"])

    def trigger_next_scheduled(self, dag_id: str, conf: Mapping[str, Any] | None = None) -> str:
        """
        Start the run the scheduler would create on unpausing ``dag_id``, now, with ``conf``.

        A scheduled DAG without catchup runs its latest interval as soon as it is unpaused: a
        manual run and that scheduled one would pay for the batch twice. Given that interval's
        logical date, the manual run takes its place, and the scheduler skips it.
        """
        logical_date = self.api_json("GET", f"/dags/{dag_id}")["next_dagrun_logical_date"]
        return self.trigger(dag_id, conf, logical_date=logical_date)

    def wait_for_run(self, dag_id: str, run_id: str, *, timeout: float) -> dict[str, Any]:
        """Wait until the run is in a final state; returns the run."""

        def finished() -> dict[str, Any] | None:
            self.raise_if_exited()
            run = self.api_json("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            return dict(run) if run["state"] in ("success", "failed") else None

        return wait_for(f"run {run_id} of {dag_id} to finish", finished, timeout=timeout, interval=1)

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        """The run's task instances by task id (of a mapped task, one: see ``all_task_instances``)."""
        return {ti["task_id"]: ti for ti in self.all_task_instances(dag_id, run_id)}

    def all_task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of the run, each map index of a mapped task included."""
        body = self.api_json("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000})
        return list(body["task_instances"])

    def progress(self, dag_id: str, run_id: str) -> RunProgress:
        """How many of the run's task instances are done, deferred, running and failed."""
        return RunProgress.of(ti["state"] for ti in self.all_task_instances(dag_id, run_id))

    def failed_task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The run's task instances that failed themselves (not those an upstream failure stopped)."""
        return [ti for ti in self.all_task_instances(dag_id, run_id) if ti["state"] == "failed"]

    def waits_ended_in_triggerer(self, dag_id: str, run_id: str) -> set[tuple[str, int]]:
        """
        ``(task_id, map_index)`` of every task instance of the run that deferred and whose trigger
        fired in the triggerer: the triggerer writes each trigger's log beside the task's
        (``attempt=N.log.trigger.<id>.log``). Read from those files because they outlive the run
        (trigger rows are deleted once they fire) and Airflow 3.1's audit log has no deferral event.
        """
        waits = set()
        for path in self.task_logs.glob(f"dag_id={dag_id}/run_id={run_id}/task_id=*/**/*.log.trigger.*.log"):
            if '"Trigger fired event"' not in path.read_text(errors="replace"):
                continue
            parts = dict(part.split("=", 1) for part in path.parent.relative_to(self.task_logs).parts)
            waits.add((parts["task_id"], int(parts.get("map_index", -1))))
        return waits

    def job_counts(self) -> dict[str, int]:
        """How many jobs of each type the metadata database holds (a ``TriggererJob``: a triggerer ran)."""
        with contextlib.closing(sqlite3.connect(self.database)) as db:
            return dict(db.execute("SELECT job_type, COUNT(*) FROM job GROUP BY job_type").fetchall())

    def create_pool(self, name: str, slots: int, description: str, *, include_deferred: bool) -> None:
        """A pool; ``include_deferred`` counts deferred task instances against its slots."""
        flags = ["--include-deferred"] if include_deferred else []
        self.airflow("pools", "set", name, str(slots), description, *flags)

    def unpause(self, dag_id: str) -> None:
        self.api_json("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def pids(self) -> list[int]:
        """The process ids of the services (each the leader of its own process group)."""
        return [service.process.pid for service in self.services]

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        body = self.api_json(
            "GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        )
        return body["value"]

    def task_log_files(self, dag_id: str, run_id: str, task_id: str) -> Iterator[Path]:
        """The log files the task's tries (and its triggers) wrote under AIRFLOW_HOME/logs."""
        for folder in self.task_logs.glob(f"dag_id={dag_id}/run_id={run_id}/task_id={task_id}*"):
            yield from sorted(path for path in folder.rglob("*") if path.is_file())

    def task_log_tail(self, ti: Mapping[str, Any], lines: int = 25) -> tuple[Path, str] | None:
        """
        The log of a task instance's last try (as the REST API returns it) and its last ``lines``
        events as text; ``None`` when it wrote none. The task writes the same file again when it
        resumes after a deferral, so that file ends with how the try ended.
        """
        folder = (
            self.task_logs
            / f"dag_id={ti['dag_id']}"
            / f"run_id={ti['dag_run_id']}"
            / f"task_id={ti['task_id']}"
        )
        if ti["map_index"] >= 0:
            folder /= f"map_index={ti['map_index']}"
        path = folder / f"attempt={ti['try_number']}.log"
        if not path.is_file():
            return None
        return path, "\n".join(
            _log_event_text(line) for line in path.read_text(errors="replace").splitlines()[-lines:]
        )


def _log_event_text(line: str) -> str:
    """One line of a task log as a person reads it: Airflow 3 writes each event as a JSON object."""
    try:
        event = json.loads(line)
    except ValueError:
        return line
    if not isinstance(event, dict):
        return line
    text = f"{event.get('timestamp', '')[11:19]} {event.get('level', '').upper()} {event.get('event', '')}"
    # A failure's exceptions, innermost last; their frames are noise in a summary.
    for error in event.get("error_detail") or []:
        text += f"\n    {error.get('exc_type')}: {error.get('exc_value')}"
    return text


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
