"""The simulated clock: hall time of day in seconds, driven by real time or by the actors.

``ScaledClock`` runs ``speed`` simulated seconds per real second. ``EagerClock`` (``--speed max``)
jumps to the next moment anyone waits for, once every actor is waiting: a conservative
discrete-event clock over threads. An actor that starts work which takes simulated time (a
weighing of several minutes) says so with ``hold``, so the clock may move on to the other actors'
moments up to then while the work runs; it never moves past the earliest moment an actor waits
for or holds. Both clocks give up at a real-time deadline.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable


class DeadlineReached(RuntimeError):
    """The run's real-time deadline passed while an actor waited."""


class Clock(ABC):
    """The interface the actors use; ``join``/``leave`` bracket an actor's life."""

    @abstractmethod
    def now(self) -> float: ...

    @abstractmethod
    def join(self, actor: str) -> None:
        """An actor starts; until it waits or holds, the clock waits for it."""

    @abstractmethod
    def leave(self, actor: str) -> None:
        """An actor is done and no longer holds the clock back."""

    @abstractmethod
    def hold(self, actor: str, until_s: float) -> None:
        """The actor is busy until ``until_s`` and needs nothing from the clock before then."""

    @abstractmethod
    def sleep_until(self, actor: str, at_s: float) -> None: ...

    @abstractmethod
    def check_deadline(self) -> None: ...


class ScaledClock(Clock):
    """Simulated time = start + speed x real seconds since the clock was made."""

    def __init__(
        self,
        start_s: float,
        speed: float,
        deadline_s: float,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not speed > 0:
            raise ValueError("the speed is more than 0 simulated seconds per real second")
        self.start_s = start_s
        self.speed = speed
        self._monotonic = monotonic
        self._sleep = sleep
        self._began = monotonic()
        self._deadline = self._began + deadline_s

    def now(self) -> float:
        return self.start_s + (self._monotonic() - self._began) * self.speed

    def join(self, actor: str) -> None:
        """Real time moves on its own; actors need not report."""

    def leave(self, actor: str) -> None:
        """Nothing to release."""

    def hold(self, actor: str, until_s: float) -> None:
        """Work takes the real time it takes."""

    def sleep_until(self, actor: str, at_s: float) -> None:
        while True:
            self.check_deadline()
            left = (at_s - self.now()) / self.speed
            if left <= 0:
                return
            # Short naps, so a passed deadline is noticed within half a second.
            self._sleep(min(left, 0.5, max(0.0, self._deadline - self._monotonic())) or 0.01)

    def check_deadline(self) -> None:
        if self._monotonic() > self._deadline:
            raise DeadlineReached("the run's deadline passed")


class EagerClock(Clock):
    """As fast as the hall takes it: time jumps to the next moment an actor waits for."""

    def __init__(
        self,
        start_s: float,
        deadline_s: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._now = start_s
        self._monotonic = monotonic
        self._deadline = monotonic() + deadline_s
        self._changed = threading.Condition()
        self._bounds: dict[str, float] = {}
        """Actor -> the earliest moment it may still act at: now while it works, else the
        moment it waits for or holds until."""

    def now(self) -> float:
        with self._changed:
            return self._now

    def join(self, actor: str) -> None:
        with self._changed:
            self._bounds[actor] = self._now

    def leave(self, actor: str) -> None:
        with self._changed:
            self._bounds.pop(actor, None)
            self._advance()

    def hold(self, actor: str, until_s: float) -> None:
        with self._changed:
            self._bounds[actor] = max(self._now, until_s)
            self._advance()

    def sleep_until(self, actor: str, at_s: float) -> None:
        with self._changed:
            self._bounds[actor] = max(self._now, at_s)
            self._advance()
            while self._now < at_s:
                self.check_deadline()
                self._changed.wait(timeout=0.5)
            # Awake and working: the clock waits for this actor again.
            self._bounds[actor] = self._now

    def _advance(self) -> None:
        if self._bounds:
            earliest = min(self._bounds.values())
            if earliest > self._now:
                self._now = earliest
                self._changed.notify_all()

    def check_deadline(self) -> None:
        if self._monotonic() > self._deadline:
            raise DeadlineReached("the run's deadline passed")
