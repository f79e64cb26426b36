"""
Values a triggerer builds once, in a thread, however many triggers ask for them at the same moment.

A triggerer restarting with thousands of Luma waits starts them all in one turn of its event loop.
Anything slow that each of them needs first (the process's SSL context, which loads the CA bundle;
the hook's module, whose import brings httpx's client and aiohttp) would block that loop for as long
as it takes, and built once per trigger in the default executor it would also starve the executor,
which resolves host names. So it is built once, off the loop, and every other caller awaits that one
build (single flight).
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

_T = TypeVar("_T")


class BuiltOnce(Generic[_T]):
    """
    A value built on first use and then kept for the life of the process.

    A failed build is not remembered: the next caller tries again.

    :param build: makes the value; it may block (it runs in a thread when asked for from a loop).
    """

    def __init__(self, build: Callable[[], _T]) -> None:
        self._build = build
        self._value: _T | None = None
        self._lock = threading.Lock()
        self._building: dict[asyncio.AbstractEventLoop, asyncio.Future[_T]] = {}

    def get(self) -> _T:
        """The value, built now if this is the first use (blocking: not for the event loop)."""
        with self._lock:
            if self._value is None:
                self._value = self._build()
            return self._value

    async def aget(self) -> _T:
        """The value, built in a thread by the first caller; everyone else awaits that one build."""
        if self._value is not None:
            return self._value
        loop = asyncio.get_running_loop()
        building = self._building.get(loop)
        if building is None:
            building = self._building[loop] = loop.run_in_executor(None, self.get)
            building.add_done_callback(lambda _: self._building.pop(loop, None))
        # A waiter cancelled (its trigger removed) leaves the build running for the others.
        return await asyncio.shield(building)
