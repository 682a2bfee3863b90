"""Freed memory handed back once many board watchers have left, and not more often than allowed."""

from __future__ import annotations

from pricing.adapters.memory import MemoryRelease


def test_memory_is_released_when_the_watchers_fell_far_enough_from_their_peak() -> None:
    watchers = {"n": 0}
    now = {"t": 100.0}
    released: list[float] = []
    release = MemoryRelease(
        lambda: watchers["n"],
        drop=100,
        every_s=10,
        release=lambda: released.append(now["t"]),
        clock=lambda: now["t"],
    )
    # Given 2 000 watchers that come, then 50 that leave: not enough to bother
    watchers["n"] = 2000
    assert not release.check()
    watchers["n"] = 1950
    assert not release.check()
    # When most of them leave
    watchers["n"] = 10
    assert release.check()
    # Then memory is released once, and again only after more leave and time has passed
    assert released == [100.0]
    watchers["n"] = 500
    release.check()
    watchers["n"] = 0
    assert not release.check()
    now["t"] = 111.0
    assert release.check()
    assert released == [100.0, 111.0]
