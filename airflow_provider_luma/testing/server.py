"""``LumaEmulator``: the emulator app served by uvicorn in a background thread, and its Python controls."""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_luma.testing.faults import Fault, FaultQueue
from airflow_provider_luma.testing.outputs import UrlSigner
from airflow_provider_luma.testing.state import (
    OTHER_CLIENT,
    PRIMARY_CLIENT,
    Clock,
    EmulatorSettings,
    EmulatorState,
    EmulatorStats,
)

if TYPE_CHECKING:
    from types import TracebackType

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0


class LumaEmulator:
    """
    A local Luma Agents API on 127.0.0.1, for tests and demos.

    Use it as a context manager (or ``start()``/``stop()``); ``base_url`` and ``api_key`` are what a client
    needs. States move ``queued -> processing -> completed|failed`` as time passes (computed on each GET).

    :param host: interface to bind (keep 127.0.0.1).
    :param port: TCP port; 0 picks a free one.
    :param api_key: the accepted key (must start with ``luma-api-``); a random one by default.
    :param other_api_key: a key of a second client (account), whose generations and files the first
        client cannot see (404) and which has its own rate limits; a random one by default.
    :param clock: returns Unix seconds; inject one to move time in tests without sleeping.
    :param settings: any field of :class:`EmulatorSettings` (``queued_seconds``, ``processing_seconds``,
        ``long_edge``, ``rpm_limit``, ``concurrency_limit``, ``url_ttl_seconds``,
        ``output_padding_bytes``, ``file_ingest_seconds``, ``upload_url_ttl_seconds``,
        ``allow_loopback_urls``), with its defaults there.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        other_api_key: str | None = None,
        clock: Clock = time.time,
        **settings: Any,
    ) -> None:
        self.api_key = api_key or f"luma-api-emulator-{secrets.token_hex(12)}"
        self.other_api_key = other_api_key or f"luma-api-emulator-other-{secrets.token_hex(12)}"
        for name, key in (("api_key", self.api_key), ("other_api_key", self.other_api_key)):
            if not key.startswith("luma-api-"):
                raise ValueError(f"{name} must start with 'luma-api-'")
        if self.api_key == self.other_api_key:
            raise ValueError("other_api_key must differ from api_key")
        self._state = EmulatorState(EmulatorSettings(**settings), self.api_key, self.other_api_key, clock)
        self._faults = FaultQueue()
        self._signer = UrlSigner()
        self._host = host
        self._requested_port = port
        self._port: int | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    @property
    def app(self) -> Any:
        """A new ASGI app over this emulator's state (for serving it some other way)."""
        from airflow_provider_luma.testing.app import create_app

        return create_app(self._state, self._faults, self._signer)

    def start(self) -> LumaEmulator:
        """Serve in a background thread; returns once the socket accepts connections."""
        if self._thread is not None:
            raise RuntimeError("the emulator is already running")
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._requested_port))
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="none",
            # Requests held by slow/read_timeout faults must not hold up stop() for long.
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="luma-emulator", daemon=True
        )
        self._server, self._thread, self._socket = server, thread, sock
        self._port = sock.getsockname()[1]
        thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the Luma emulator did not start")
            # Wait on the thread (not a fixed sleep): returns as soon as it dies, else re-checks.
            thread.join(0.005)
        with socket.create_connection((self._host, self._port), timeout=_START_TIMEOUT):
            pass
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread to end."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(_STOP_TIMEOUT)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> LumaEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- addresses -------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the emulator is not running")
        return self._port

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:<port>`` (the control plane is under ``/_emulator/``)."""
        return f"http://{self._host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The API base URL, ``http://127.0.0.1:<port>/v1``."""
        return f"{self.root_url}/v1"

    def connection_json(self, conn_type: str = "luma") -> str:
        """An Airflow connection as JSON, for ``AIRFLOW_CONN_<ID>``."""
        return json.dumps({"conn_type": conn_type, "host": self.base_url, "password": self.api_key})

    # --- scripting -------------------------------------------------------------------------------

    def add_fault(self, fault: Fault) -> None:
        """Queue a fault for the next ``fault.times`` requests of ``fault.method`` (FIFO per method)."""
        self._faults.add(fault)

    def pending_faults(self) -> list[dict[str, Any]]:
        return self._faults.pending()

    def fail_next_generations(self, code: str, count: int = 1, reason: str | None = None) -> None:
        """The next ``count`` generations created end ``failed`` with ``code`` (and documented reason)."""
        self._state.plan_failures(code, count, reason)

    def set_state(
        self,
        generation_id: str,
        state: str,
        failure_code: str | None = None,
        failure_reason: str | None = None,
        *,
        allow_unknown: bool = False,
    ) -> None:
        """
        Pin a generation's state now (``failed`` defaults to generation_failed); KeyError if unknown.

        ``state`` is one of ``queued``, ``processing``, ``completed``, ``failed``; any other string
        (``"moderating"``, as a newer API might report) only with ``allow_unknown=True``, and it is
        then non-terminal.
        """
        self._state.set_state(generation_id, state, failure_code, failure_reason, allow_unknown)

    def expire_output_urls(self) -> None:
        """Every output URL minted so far answers 403 from now on; new GETs mint working ones."""
        self._state.expire_output_urls()

    def add_api_key(
        self,
        key: str,
        status: Literal["active", "revoked", "expired"] = "active",
        *,
        other_client: bool = False,
    ) -> None:
        """
        Make ``key`` known to the emulator (until ``reset``), e.g. a revoked one for 401 tests.

        The key belongs to ``api_key``'s client (it sees the same generations and files and shares its
        limits), or with ``other_client`` to ``other_api_key``'s.
        """
        self._state.add_api_key(key, status, OTHER_CLIENT if other_client else PRIMARY_CLIENT)

    def fail_next_file_ingest(self, reason: str | None = None, count: int = 1) -> None:
        """The next ``count`` files completed end ``failed`` with ``reason`` (default: moderation)."""
        with self._state.lock:
            self._state.files.plan_failures(reason, count)

    def expire_file(self, file_id: str) -> None:
        """The file's ``expires_at`` is now: it reads ``deleted`` from now on; KeyError if unknown."""
        with self._state.lock:
            self._state.files.expire(file_id)

    def configure(self, **settings: Any) -> None:
        """Change settings (the constructor's names) until the next ``reset``."""
        self._state.configure(**settings)

    def reset(self) -> None:
        """Forget generations, files, faults, plans, counters, rate windows, added keys; restore settings."""
        self._faults.clear()
        self._state.reset()

    # --- inspection ------------------------------------------------------------------------------

    @property
    def stats(self) -> EmulatorStats:
        """A snapshot of the counters (``generations_created``, ``requests``...)."""
        return self._state.stats()

    def generation_ids(self) -> list[str]:
        """Ids of the generations created since the last reset, oldest first."""
        with self._state.lock:
            return list(self._state.generations)

    def generation_state(self, generation_id: str) -> str:
        """The state a GET would report now; KeyError if unknown."""
        with self._state.lock:
            return self._state.generations[generation_id].state_at(self._state.clock())

    def file_ids(self) -> list[str]:
        """Ids of the files created since the last reset (any client), oldest first."""
        with self._state.lock:
            return list(self._state.files.files)

    def file_state(self, file_id: str) -> str:
        """The state a ``GET /v1/files/{id}`` would report now; KeyError if unknown."""
        with self._state.lock:
            return self._state.files.files[file_id].state_at(self._state.clock())
