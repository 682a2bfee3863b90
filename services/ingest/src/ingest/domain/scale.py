"""Stable-weight detection: when a stream of scale readings may become a weight on a ticket.

A weight is only traded on when it is a legal weight: rounded to the scale's division d, between
Min and Max, taken while the load was at rest, from a scale whose zero is right, and taken once per
load. The indicator's own "stable" flag is not trusted for this; the hall decides from the readings
themselves, so the rule is the same for every indicator brand and can be shown to an inspector.

Times are integer milliseconds passed in by the caller; nothing in here reads a clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum

from ingest.domain.errors import DomainError, InvalidScaleConfig, ReadingOutOfOrder


def round_to_division(value_g: int, division_g: int) -> int:
    """``value_g`` rounded to a multiple of ``division_g``, halves away from zero (−50 → −100)."""
    if division_g < 1:
        raise ValueError(f"a scale division is at least 1 g, not {division_g}")
    steps, rest = divmod(abs(value_g), division_g)
    if 2 * rest >= division_g:
        steps += 1
    rounded = steps * division_g
    return -rounded if value_g < 0 else rounded


def format_kg(value_g: int) -> str:
    """Grams as kilograms for people: two decimals, three when the grams need them (612.40 kg)."""
    places = 2 if value_g % 10 == 0 else 3
    return f"{Decimal(value_g) / 1000:.{places}f} kg"


@dataclass(frozen=True)
class ScaleConfig:
    """A scale's legal parameters, as on its data plate and verification certificate.

    - ``division_g`` (d, 分度值): the scale interval the indicator reads in; every weight is
      rounded to it. For class III trade scales the verification interval e equals d.
    - ``max_g`` (Max, 最大秤量): the largest load the scale may weigh; a multiple of d. A legal
      indicator blanks its display above Max + 9 d and flags overload; the hall refuses any
      reading above Max, flagged or not.
    - ``min_load_g`` (Min, 最小秤量): below it the relative error is too large to trade on. For
      class III it is typically 20 d. It also separates "empty" from "loaded".
    - ``motion_band_d``: how far, in divisions, readings may wander and still count as at rest.
    - ``window_ms``: how long readings must stay inside the band before a weight may be taken.
    - ``zero_band_g``: how far from 0 an empty scale may read and still count as zeroed; defaults
      to half a division, rounded up (a correctly zeroed indicator shows 0 within ±½ d).
    - ``stale_ms``: silence after which the scale counts as offline.
    """

    division_g: int
    max_g: int
    min_load_g: int
    motion_band_d: int = 1
    window_ms: int = 1000
    zero_band_g: int | None = None
    stale_ms: int = 2000

    def __post_init__(self) -> None:
        for name in ("division_g", "max_g", "min_load_g", "motion_band_d", "window_ms", "stale_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidScaleConfig(f"{name} must be a whole number, not {value!r}")
        if self.zero_band_g is None:
            object.__setattr__(self, "zero_band_g", (self.division_g + 1) // 2)
        problems = self._problems()
        if problems:
            raise InvalidScaleConfig("scale configuration: " + "; ".join(problems))

    def _problems(self) -> list[str]:
        d = self.division_g
        problems: list[str] = []
        if d < 1:
            problems.append(f"division d must be at least 1 g, not {d}")
            return problems
        if self.max_g < d:
            problems.append(f"Max {self.max_g} g must be at least one division ({d} g)")
        elif self.max_g % d:
            problems.append(f"Max {self.max_g} g must be a multiple of d = {d} g")
        if self.min_load_g < 1:
            problems.append(f"Min must be at least 1 g, not {self.min_load_g}")
        elif self.min_load_g >= self.max_g:
            problems.append(f"Min {self.min_load_g} g must be below Max {self.max_g} g")
        if self.motion_band_d < 0:
            problems.append(f"motion band must be 0 or more divisions, not {self.motion_band_d}")
        if self.window_ms < 1:
            problems.append(f"stability window must be at least 1 ms, not {self.window_ms}")
        if self.stale_ms < 1:
            problems.append(f"offline limit must be at least 1 ms, not {self.stale_ms}")
        band = self.zero_band_g
        if isinstance(band, bool) or not isinstance(band, int) or band < 0:
            problems.append(f"zero band must be a whole number of grams ≥ 0, not {band!r}")
        elif band >= self.min_load_g:
            problems.append(f"zero band ±{band} g must be below Min {self.min_load_g} g")
        return problems

    @property
    def zero_tolerance_g(self) -> int:
        """The resolved zero band (``zero_band_g`` after its default was applied)."""
        assert self.zero_band_g is not None
        return self.zero_band_g

    @property
    def divisions(self) -> int:
        """n = Max / d, the number of scale intervals (class III: 100 to 10 000)."""
        return self.max_g // self.division_g

    @property
    def motion_band_g(self) -> int:
        return self.motion_band_d * self.division_g


class Refusal(StrEnum):
    """Why a weight may not be taken, as the operator's screen names it."""

    UNSTABLE = "unstable"
    OVERLOAD = "overload"
    BELOW_MINIMUM = "below_minimum"
    NEGATIVE = "negative"
    ZERO_DRIFT = "zero_drift"
    NOT_RETURNED_TO_ZERO = "not_returned_to_zero"
    OFFLINE = "offline"

    @property
    def zh(self) -> str:
        return _REFUSAL_ZH[self]

    @property
    def en(self) -> str:
        return self.value.replace("_", " ")


_REFUSAL_ZH = {
    Refusal.UNSTABLE: "不稳定",
    Refusal.OVERLOAD: "超载",
    Refusal.BELOW_MINIMUM: "低于最小秤量",
    Refusal.NEGATIVE: "负值",
    Refusal.ZERO_DRIFT: "零点漂移",
    Refusal.NOT_RETURNED_TO_ZERO: "未回零",
    Refusal.OFFLINE: "秤离线",
}


class WeighingRefused(DomainError):
    """A weight that may not be taken now; ``reason`` says why, the messages give the numbers."""

    def __init__(self, reason: Refusal, detail_en: str, detail_zh: str) -> None:
        self.reason = reason
        self.message = f"{reason.en}: {detail_en}"
        self.message_zh = f"{reason.zh}：{detail_zh}"
        super().__init__(self.message)

    @property
    def code(self) -> str:
        """The refusal's code in the API's error body (``unstable``, ``overload`` ...)."""
        return self.reason.value


class ScaleStatus(StrEnum):
    """What the scale is doing now, for the operator's screen.

    ``empty``: at rest within the zero band. ``zero_drift``: at rest but the zero is off, either
    empty and reading outside the zero band, or loaded after the last empty reading was off.
    ``stable``: at rest with a load of at least Min on a good zero.
    """

    STABLE = "stable"
    MOTION = "motion"
    OVERLOAD = "overload"
    UNDERLOAD = "underload"
    OFFLINE = "offline"
    ZERO_DRIFT = "zero_drift"
    EMPTY = "empty"


@dataclass(frozen=True)
class ScaleState:
    """The scale as seen at ``at_ms``.

    ``value_g`` is the reading rounded to d; None when there is no number to believe: offline,
    overload (above Max) or underload. ``taken`` means the load on the scale was already taken and
    the scale has not been back to zero since.
    """

    value_g: int | None
    status: ScaleStatus
    stable_since_ms: int | None
    taken: bool
    at_ms: int

    @property
    def at_rest(self) -> bool:
        """Whether the readings held still for a window (stable, empty or on a drifted zero)."""
        return self.status in _AT_REST


_AT_REST = frozenset({ScaleStatus.STABLE, ScaleStatus.EMPTY, ScaleStatus.ZERO_DRIFT})


@dataclass(frozen=True)
class StableWeight:
    """A weight taken from the scale, with the evidence that it was at rest.

    ``time_to_stable_ms`` runs from the first reading of this load (the first at or above Min
    after the scale was below it) to the moment the window was satisfied.
    """

    value_g: int
    stable_since_ms: int
    time_to_stable_ms: int
    readings_in_window: int


@dataclass(frozen=True)
class _Reading:
    at_ms: int
    raw_g: int | None
    overload: bool
    underload: bool


@dataclass(frozen=True)
class _Memory:
    """What the detector remembers across readings besides the readings themselves."""

    taken: bool = False
    drift_g: int | None = None
    load_since_ms: int | None = None
    stable_since_ms: int | None = None


@dataclass(frozen=True)
class _View:
    state: ScaleState
    memory: _Memory
    rounded_g: int | None
    window_readings: int
    age_ms: int | None


class StabilityDetector:
    """Turns one scale's readings into states and, on request, a stable weight.

    Stable means: every reading of the last ``window_ms`` (counting the last reading at or before
    the window's start, which held at that moment) is a number within ±``motion_band_d``
    divisions of the latest, and such a reading exists, so the whole window is covered.

    Mutable and not thread-safe: one detector per scale, callers hold a lock. Readings must come
    in time order; a query time before the latest reading is taken as that reading's time, since
    the caller's clock and the readings' timestamps may differ by a little.
    """

    def __init__(self, config: ScaleConfig) -> None:
        self._config = config
        self._window: deque[_Reading] = deque()
        self._last: _Reading | None = None
        self._memory = _Memory()

    @property
    def config(self) -> ScaleConfig:
        return self._config

    def observe(
        self, value_g: int | None, at_ms: int, *, overload: bool = False, underload: bool = False
    ) -> ScaleState:
        """Take in one reading (None when the indicator sent no number) and return the state."""
        last = self._last
        if last is not None:
            if at_ms < last.at_ms:
                raise ReadingOutOfOrder(
                    f"reading at {at_ms} ms is older than the last one at {last.at_ms} ms"
                )
            if at_ms - last.at_ms > self._config.stale_ms:
                # The stream broke off: what was at rest before the gap proves nothing now.
                self._window.clear()
                self._memory = replace(self._memory, stable_since_ms=None)
            else:
                # Settle the silence since the last reading first: an indicator that only sends
                # on change may have been at rest (for instance on zero) until this reading.
                self._memory = self._view(at_ms).memory
        reading = _Reading(at_ms, value_g, overload, underload)
        self._last = reading
        self._window.append(reading)
        self._memory = replace(
            self._memory, load_since_ms=self._load_since(reading, self._memory.load_since_ms)
        )
        self._prune(at_ms)
        view = self._view(at_ms)
        self._memory = view.memory
        return view.state

    def state(self, now_ms: int) -> ScaleState:
        """The state at ``now_ms`` without taking anything."""
        return self._view(self._clamp(now_ms)).state

    def take(self, now_ms: int) -> StableWeight:
        """The stable weight on the scale now; raises ``WeighingRefused`` when there is none.

        After a take, the same load cannot be taken again until the scale was back at rest within
        the zero band.
        """
        view = self._view(self._clamp(now_ms))
        self._memory = view.memory
        self._refuse_unless_takeable(view)
        state = view.state
        assert state.value_g is not None and state.stable_since_ms is not None
        load_since = view.memory.load_since_ms
        start = state.stable_since_ms if load_since is None else load_since
        self._memory = replace(self._memory, taken=True)
        return StableWeight(
            value_g=state.value_g,
            stable_since_ms=state.stable_since_ms,
            time_to_stable_ms=max(0, state.stable_since_ms - start),
            readings_in_window=view.window_readings,
        )

    def release_take(self) -> None:
        """Let the load on the scale be taken again, because its take could not be recorded."""
        self._memory = replace(self._memory, taken=False)

    def require_zero(self) -> None:
        """Refuse the load now on the scale until it returns to zero, e.g. after a restart."""
        self._memory = replace(self._memory, taken=True)

    def reconfigure(self, config: ScaleConfig) -> None:
        """Apply new legal parameters; the weight must settle again under them.

        A take and a zero drift are remembered: changing parameters must not let a load be taken
        twice or hide an off zero.
        """
        self._config = config
        self._window.clear()
        self._memory = replace(self._memory, stable_since_ms=None)

    def _clamp(self, now_ms: int) -> int:
        return now_ms if self._last is None else max(now_ms, self._last.at_ms)

    def _load_since(self, reading: _Reading, since: int | None) -> int | None:
        if reading.overload:
            return reading.at_ms if since is None else since
        if reading.underload:
            return None
        if reading.raw_g is None:
            return since
        rounded = round_to_division(reading.raw_g, self._config.division_g)
        if rounded < self._config.min_load_g:
            return None
        return reading.at_ms if since is None else since

    def _prune(self, latest_ms: int) -> None:
        """Forget readings older than the window, keeping the one that held at its start."""
        start = latest_ms - self._config.window_ms
        window = self._window
        while len(window) >= 2 and window[1].at_ms <= start:
            window.popleft()

    def _view(self, now_ms: int) -> _View:
        config = self._config
        memory = self._memory
        last = self._last

        age = None if last is None else now_ms - last.at_ms

        def unsettled(status: ScaleStatus, rounded: int | None, shown: int | None) -> _View:
            moved = replace(memory, stable_since_ms=None)
            state = ScaleState(shown, status, None, moved.taken, now_ms)
            return _View(state, moved, rounded, 0, age)

        if last is None or age is None or age > config.stale_ms:
            return unsettled(ScaleStatus.OFFLINE, None, None)
        if last.overload:
            return unsettled(ScaleStatus.OVERLOAD, None, None)
        if last.underload:
            return unsettled(ScaleStatus.UNDERLOAD, None, None)
        if last.raw_g is None:
            return unsettled(ScaleStatus.MOTION, None, None)
        value = round_to_division(last.raw_g, config.division_g)
        if value > config.max_g:
            return unsettled(ScaleStatus.OVERLOAD, value, None)

        in_window = self._window_at(now_ms)
        if in_window is None or not all(
            r.raw_g is not None
            and not (r.overload or r.underload)
            and abs(round_to_division(r.raw_g, config.division_g) - value) <= config.motion_band_g
            for r in in_window
        ):
            return unsettled(ScaleStatus.MOTION, value, value)

        since = memory.stable_since_ms
        if since is None:
            since = min(now_ms, self._run_start(value) + config.window_ms)
        memory = replace(memory, stable_since_ms=since)
        if abs(value) <= config.zero_tolerance_g:
            memory = replace(memory, taken=False, drift_g=None)
            status = ScaleStatus.EMPTY
        elif value < config.min_load_g:
            if not self._off_zero_throughout(in_window, value):
                # A step off zero that the window has not seen throughout is the start of a
                # load (or its end), not a zero that drifted.
                return unsettled(ScaleStatus.MOTION, value, value)
            memory = replace(memory, drift_g=value)
            status = ScaleStatus.ZERO_DRIFT
        elif memory.drift_g is not None:
            status = ScaleStatus.ZERO_DRIFT
        else:
            status = ScaleStatus.STABLE
        state = ScaleState(value, status, since, memory.taken, now_ms)
        return _View(state, memory, value, len(in_window), age)

    def _off_zero_throughout(self, readings: list[_Reading], value: int) -> bool:
        """Every reading of the window is off zero on the side of ``value``: a drifted zero."""
        config = self._config
        for reading in readings:
            assert reading.raw_g is not None
            rounded = round_to_division(reading.raw_g, config.division_g)
            if abs(rounded) <= config.zero_tolerance_g or (rounded > 0) != (value > 0):
                return False
        return True

    def _window_at(self, now_ms: int) -> list[_Reading] | None:
        """The readings that cover [now - window, now], or None when they do not reach back."""
        start = now_ms - self._config.window_ms
        readings = list(self._window)
        anchor = None
        for index, reading in enumerate(readings):
            if reading.at_ms <= start:
                anchor = index
        return None if anchor is None else readings[anchor:]

    def _run_start(self, value: int) -> int:
        """When the readings last entered the band around ``value``, as far as still known."""
        config = self._config
        start = self._window[-1].at_ms
        for reading in reversed(self._window):
            if reading.raw_g is None or reading.overload or reading.underload:
                break
            rounded = round_to_division(reading.raw_g, config.division_g)
            if abs(rounded - value) > config.motion_band_g:
                break
            start = reading.at_ms
        return start

    def _refuse_unless_takeable(self, view: _View) -> None:
        config = self._config
        state = view.state
        status = state.status
        value = view.rounded_g
        last = self._last
        if status is ScaleStatus.OFFLINE:
            if last is None:
                raise WeighingRefused(
                    Refusal.OFFLINE, "no reading from the scale yet", "尚未收到秤的读数"
                )
            raise WeighingRefused(
                Refusal.OFFLINE,
                f"no reading for {view.age_ms} ms (limit {config.stale_ms} ms)",
                f"已 {view.age_ms} 毫秒没有读数（上限 {config.stale_ms} 毫秒）",
            )
        max_text = format_kg(config.max_g)
        if status is ScaleStatus.OVERLOAD:
            if value is None:
                raise WeighingRefused(
                    Refusal.OVERLOAD,
                    f"the indicator reports overload (Max {max_text})",
                    f"仪表显示超载（最大秤量 {max_text}）",
                )
            raise WeighingRefused(
                Refusal.OVERLOAD,
                f"{format_kg(value)} is above Max {max_text}",
                f"{format_kg(value)} 超过最大秤量 {max_text}",
            )
        if status is ScaleStatus.UNDERLOAD:
            raise WeighingRefused(
                Refusal.NEGATIVE,
                "the indicator reports underload (below zero)",
                "仪表显示欠载（低于零）",
            )
        if status is ScaleStatus.MOTION:
            band = format_kg(config.motion_band_g)
            held = f"has not held within ±{band} for {config.window_ms} ms"
            held_zh = f"未在 ±{band} 内保持 {config.window_ms} 毫秒"
            if value is None:
                raise WeighingRefused(Refusal.UNSTABLE, f"the reading {held}", f"读数{held_zh}")
            text = format_kg(value)
            raise WeighingRefused(Refusal.UNSTABLE, f"{text} {held}", f"{text} {held_zh}")
        assert value is not None
        text = format_kg(value)
        if value < 0:
            raise WeighingRefused(Refusal.NEGATIVE, f"{text} is below zero", f"{text} 低于零")
        if value < config.min_load_g:
            min_text = format_kg(config.min_load_g)
            raise WeighingRefused(
                Refusal.BELOW_MINIMUM,
                f"{text} is below Min {min_text}",
                f"{text} 低于最小秤量 {min_text}",
            )
        drift = view.memory.drift_g
        if drift is not None:
            zero = format_kg(config.zero_tolerance_g)
            raise WeighingRefused(
                Refusal.ZERO_DRIFT,
                f"the empty scale last read {format_kg(drift)}, outside the zero band ±{zero}; "
                f"unload and zero the scale",
                f"空秤读数 {format_kg(drift)}，超出零点范围 ±{zero}；请卸货并置零",
            )
        if view.memory.taken:
            raise WeighingRefused(
                Refusal.NOT_RETURNED_TO_ZERO,
                f"{text} was already taken; unload until the scale returns to zero",
                f"{text} 已经取过重；请卸货，待秤回零",
            )
