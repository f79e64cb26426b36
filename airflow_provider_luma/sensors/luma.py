"""Wait for a generation submitted elsewhere (for example with ``wait_for_completion=False``)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_luma import polling
from airflow_provider_luma._compat import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    AirflowTaskTimeout,
    conf,
)
from airflow_provider_luma.exceptions import (
    LumaError,
    LumaGenerationFailedError,
    LumaGenerationTimeoutError,
)
from airflow_provider_luma.models import GenerationState

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

    from airflow_provider_luma.hooks.luma import LumaHook


class LumaGenerationSensor(BaseSensorOperator):
    """
    Succeed when a generation completes; fail when it fails (skip instead with ``soft_fail=True``).

    It only reads (GET), so it never pays. It returns, and pushes as XCom, the generation's log-safe
    summary (``generation_id``, ``state``, ``model``, ``type``, ``created_at``, ``output_count``,
    ``request_id``, ``failure_code``, ``failure_reason``; never the output URLs), and pushes the key
    ``generation_id``, so it chains into ``LumaUploadOutputsOperator`` like the generate operator.

    :param generation_id: the generation to wait for. Templated.
    :param luma_conn_id: the Luma connection. Templated.
    :param deferrable: wait in the triggerer; the trigger's deadline is the sensor's ``timeout``.
        Defaults to the ``[operators] default_deferrable`` option.
    :param poke_interval: seconds between two checks. Defaults to the ``[luma] poll_interval`` option,
        else 2 s (Luma's advice).
    :param timeout: seconds before the sensor fails with ``AirflowSensorTimeout`` (or is skipped
        with ``soft_fail``). The generation may still finish, and be billed, after that.
    """

    template_fields: Sequence[str] = ("generation_id", "luma_conn_id")
    ui_color = "#f0e4ff"

    def __init__(
        self,
        *,
        generation_id: str,
        luma_conn_id: str = "luma_default",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float | None = None,
        timeout: float | timedelta = polling.DEFAULT_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        poke_interval = polling.configured_seconds("poll_interval", poke_interval)
        super().__init__(poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.generation_id = generation_id
        self.luma_conn_id = luma_conn_id
        self.deferrable = deferrable
        self._hook: LumaHook | None = None
        self._deadline: float | None = None

    def execute(self, context: Context) -> Any:
        # Bounds each GET in flight too, not only the time between pokes.
        self._deadline = polling.now() + self.timeout
        try:
            if not self.deferrable:
                return super().execute(context)
            # One look on the worker first: a generation already over needs no trip to the triggerer.
            done = self._first_look(context)
        finally:
            self._close_hook()
        if isinstance(done, PokeReturnValue):
            return done.xcom_value
        from airflow_provider_luma.triggers.luma import LumaGenerationTrigger

        start = polling.now()
        self.defer(
            trigger=LumaGenerationTrigger(
                generation_id=self.generation_id,
                deadline=start + self.timeout,
                luma_conn_id=self.luma_conn_id,
                first_poll_at=start + self.poke_interval,
                poll_interval=self.poke_interval,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout + polling.DEFERRAL_TIMEOUT_MARGIN),
        )

    def _first_look(self, context: Context) -> PokeReturnValue | bool:
        """
        One poke under the rules ``BaseSensorOperator.execute`` applies to each of its own.

        The deferrable path does not run the base class's loop, so ``soft_fail``, ``never_fail`` and
        ``silent_fail`` are honoured here as they would be there.
        """
        try:
            return self.poke(context)
        except (AirflowFailException, AirflowSensorTimeout, AirflowTaskTimeout) as error:
            if self.soft_fail or self.never_fail:
                raise AirflowSkipException(str(error)) from error
            raise
        except AirflowSkipException:
            raise
        except Exception as error:
            if self.silent_fail:
                self.log.error("Sensor poke failed: %s: %s", type(error).__name__, error)
                return False
            if self.never_fail:
                raise AirflowSkipException(str(error)) from error
            raise

    def _get_hook(self) -> LumaHook:
        """One hook (one pooled client, one connection lookup) for every poke of this execution."""
        if self._hook is None:
            from airflow_provider_luma.hooks.luma import LumaHook

            self._hook = LumaHook(luma_conn_id=self.luma_conn_id)
        return self._hook

    def _close_hook(self) -> None:
        hook, self._hook = self._hook, None
        if hook is not None:
            hook.close()

    def poke(self, context: Context) -> PokeReturnValue | bool:
        try:
            generation = self._get_hook().get_generation(self.generation_id, deadline=self._deadline)
        except LumaError as error:
            if error.retryable:
                self.log.warning("Transient error reading generation %s: %s", self.generation_id, error)
                return False
            raise AirflowFailException(str(error)) from error
        if generation.state is GenerationState.FAILED:
            failure = generation.failure_error()
            # Waiting again cannot change a failed generation, so no retry is spent on it.
            raise AirflowFailException(str(failure)) from failure
        if generation.state is not GenerationState.COMPLETED:
            self.log.info("Generation %s is %s", generation.id, generation.summary()["state"])
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._done(context, generation.summary()))

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            summary = polling.summary_or_raise(event, self.generation_id)
        except LumaGenerationTimeoutError as error:
            raise AirflowSensorTimeout(str(error)) from error
        except LumaError as error:
            # AirflowException subclasses, so that soft_fail turns them into a skip.
            if error.retryable and not isinstance(error, LumaGenerationFailedError):
                raise AirflowException(str(error)) from error
            raise AirflowFailException(str(error)) from error
        return self._done(context, summary)

    def _done(self, context: Context, summary: dict[str, Any]) -> dict[str, Any]:
        self.log.info("Generation %s completed", summary["generation_id"])
        context["ti"].xcom_push(key="generation_id", value=summary["generation_id"])
        return summary
