"""The Python-version shims in ``_compat``: what the triggerer's waits rely on."""

from __future__ import annotations

import asyncio

import pytest

from airflow_provider_luma._compat import within


async def test_a_cancellation_arriving_with_the_answer_is_not_lost() -> None:
    """
    The triggerer cancels a trigger (its task was cleared) just as a GET's answer arrives: the
    cancellation must still end the trigger. Python 3.11's ``wait_for`` returned the answer and dropped
    the cancellation, so the trigger polled on until its deadline.
    """
    answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    awaiting = asyncio.Event()
    after_the_answer = asyncio.Event()

    async def get() -> str:
        awaiting.set()
        return await answer

    async def poller() -> None:
        await within(get(), 30)
        # The next poll's wait: only a cancellation ends it.
        await after_the_answer.wait()

    task = asyncio.create_task(poller())
    await awaiting.wait()
    # Called right after the awaiting side has been woken with the answer, before the poller resumes.
    answer.add_done_callback(lambda _: task.cancel())
    answer.set_result("processing")

    await asyncio.wait({task}, timeout=5)
    assert task.cancelled()


async def test_running_out_of_time_is_the_builtin_timeout_error() -> None:
    never = asyncio.Event()
    with pytest.raises(TimeoutError):
        await within(never.wait(), 0.01)


async def test_an_answer_in_time_is_returned() -> None:
    async def answer() -> str:
        return "completed"

    assert await within(answer(), 5) == "completed"
