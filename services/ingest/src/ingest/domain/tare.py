"""Tare arithmetic: from a gross weight to the net weight a farmer is paid for.

Two ways a lot loses its packaging weight at a weigh station:

- On a platform scale the lot stands in crates of a known type; the tare is the number of crates
  times that type's tare from the cooperative's table (``crate_net``).
- On a truck scale the vehicle is weighed twice: loaded on the way in (gross) and empty on the way
  out (tare), or once against a tare stored for its plate (``VehiclePasses``).

All weights are integer grams; net = gross − tare exactly, with no rounding here (the scale has
rounded each weight to its division already).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ingest.domain.errors import (
    InvalidLot,
    InvalidPlate,
    InvalidTare,
    NetNotPositive,
    NoOpenWeighIn,
    NoStoredTare,
    UnknownCrateType,
    VehicleAlreadyWeighedIn,
)
from ingest.domain.scale import format_kg

CRATE_TARE_MIN_G = 1
CRATE_TARE_MAX_G = 50_000
VEHICLE_TARE_MAX_G = 100_000_000
"""A stored vehicle tare is at most 100 t, the most a lot may weigh in the hall's events."""
PLATE_MIN_LEN = 2
PLATE_MAX_LEN = 16

_CRATE_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


@dataclass(frozen=True)
class Net:
    """A weighing's three weights in grams; always ``net_g == gross_g - tare_g`` and net > 0."""

    gross_g: int
    tare_g: int
    net_g: int

    def __post_init__(self) -> None:
        if self.net_g != self.gross_g - self.tare_g:
            raise InvalidLot(
                f"net {self.net_g} g is not gross {self.gross_g} g − tare {self.tare_g} g"
            )
        if self.net_g <= 0:
            raise NetNotPositive(
                f"net weight must be more than 0 kg: tare {format_kg(self.tare_g)} is not below "
                f"gross {format_kg(self.gross_g)}"
            )


class CrateTares(Mapping[str, int]):
    """The tare of one crate per crate type, in grams; immutable, changed by ``with_tare``.

    A crate type is an identifier (letters, digits, ``. _ : -``, up to 64 characters) and a tare
    is 1 g to 50 kg.
    """

    __slots__ = ("_tares",)

    def __init__(self, tares: Mapping[str, int] | None = None) -> None:
        checked: dict[str, int] = {}
        for crate_type, tare_g in (tares or {}).items():
            _check_crate_tare(crate_type, tare_g)
            checked[crate_type] = tare_g
        self._tares: Mapping[str, int] = MappingProxyType(dict(sorted(checked.items())))

    def __getitem__(self, crate_type: str) -> int:
        return self._tares[crate_type]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tares)

    def __len__(self) -> int:
        return len(self._tares)

    def __repr__(self) -> str:
        return f"CrateTares({dict(self._tares)!r})"

    def tare_of(self, crate_type: str) -> int:
        """One crate's tare; ``UnknownCrateType`` (listing the known types) when there is none."""
        tare_g = self._tares.get(crate_type)
        if tare_g is None:
            raise UnknownCrateType(crate_type, tuple(self._tares))
        return tare_g

    def with_tare(self, crate_type: str, tare_g: int) -> CrateTares:
        """A new table where ``crate_type`` weighs ``tare_g``; this one is unchanged."""
        _check_crate_tare(crate_type, tare_g)
        return CrateTares({**self._tares, crate_type: tare_g})

    def without(self, crate_type: str) -> CrateTares:
        """A new table without ``crate_type``."""
        self.tare_of(crate_type)
        return CrateTares({k: v for k, v in self._tares.items() if k != crate_type})


def _check_crate_tare(crate_type: object, tare_g: object) -> None:
    if not isinstance(crate_type, str) or not _CRATE_TYPE.match(crate_type):
        raise InvalidTare(
            f"crate type {crate_type!r} must be an identifier: letters, digits and . _ : - "
            f"(up to 64), e.g. plastic-crate"
        )
    if isinstance(tare_g, bool) or not isinstance(tare_g, int):
        raise InvalidTare(f"tare of {crate_type} must be whole grams, not {tare_g!r}")
    if not CRATE_TARE_MIN_G <= tare_g <= CRATE_TARE_MAX_G:
        raise InvalidTare(
            f"tare of {crate_type} must be {CRATE_TARE_MIN_G} g to {CRATE_TARE_MAX_G // 1000} kg, "
            f"not {tare_g} g"
        )


DEFAULT_CRATE_TARES = CrateTares(
    {
        # 塑料周转筐: the park's standard returnable plastic crate, about 20 kg of melons.
        "plastic-crate": 1_600,
        # 纸箱: a corrugated carton for packed, graded fruit (two to four melons).
        "carton": 600,
        # 竹筐: a bamboo basket some households still bring.
        "basket": 1_200,
    }
)
"""The park's crate tares until the cooperative sets its own (an audit-trail change)."""


def crate_net(gross_g: int, crates: int, crate_type: str, tares: CrateTares) -> Net:
    """The net of a lot in ``crates`` crates of ``crate_type`` that weighed ``gross_g``."""
    if crates < 1:
        raise InvalidLot(f"a lot has at least 1 crate, not {crates}")
    each_g = tares.tare_of(crate_type)
    tare_g = crates * each_g
    if tare_g >= gross_g:
        raise NetNotPositive(
            f"tare of {crates} × {crate_type} ({format_kg(each_g)} each) = {format_kg(tare_g)} "
            f"is not below the gross {format_kg(gross_g)}; check the number and type of crates"
        )
    return Net(gross_g=gross_g, tare_g=tare_g, net_g=gross_g - tare_g)


def normalise_plate(plate: str) -> str:
    """A plate as the hall files it: outer spaces stripped, Latin letters upper-cased (甘h 12345
    and ``甘H 12345`` are the same truck); Chinese characters are kept as they are."""
    normalised = "".join(ch.upper() if ch.isascii() else ch for ch in plate.strip())
    if not PLATE_MIN_LEN <= len(normalised) <= PLATE_MAX_LEN:
        raise InvalidPlate(
            f"a plate has {PLATE_MIN_LEN} to {PLATE_MAX_LEN} characters, not {plate!r}"
        )
    return normalised


@dataclass(frozen=True)
class WeighIn:
    """A loaded vehicle's first pass: its gross, waiting for the tare of its second pass."""

    plate: str
    gross_g: int
    ref: str


class VehiclePasses:
    """Two-pass truck weighing: open weigh-ins and stored tares, by normalised plate.

    Mutable and not thread-safe, like the lot registry: the service owns one and changes it under
    its lock, and rebuilds it by replaying the audit trail. ``ref`` is opaque here; the service
    keeps the lot id in it.
    """

    def __init__(self) -> None:
        self._open: dict[str, WeighIn] = {}
        self._tares: dict[str, int] = {}

    @staticmethod
    def normalise(plate: str) -> str:
        return normalise_plate(plate)

    def weigh_in(self, plate: str, gross_g: int, ref: str) -> None:
        """Record a loaded vehicle's gross; refused while the plate has an open weigh-in."""
        key = normalise_plate(plate)
        existing = self._open.get(key)
        if existing is not None:
            raise VehicleAlreadyWeighedIn(key, existing.ref)
        if gross_g <= 0:
            raise InvalidLot(f"a weigh-in is more than 0 kg, not {format_kg(gross_g)}")
        self._open[key] = WeighIn(plate=key, gross_g=gross_g, ref=ref)

    def weigh_out(self, plate: str, tare_g: int | None = None) -> tuple[str, Net]:
        """Close the plate's weigh-in with ``tare_g`` (its stored tare when None): (ref, net)."""
        key = normalise_plate(plate)
        pending = self._open.get(key)
        if pending is None:
            raise NoOpenWeighIn(f"vehicle {key} has no open weigh-in")
        if tare_g is None:
            tare_g = self._tares.get(key)
            if tare_g is None:
                raise NoStoredTare(f"vehicle {key} has no stored tare; weigh it out empty")
        if tare_g <= 0:
            raise InvalidTare(f"a vehicle tare is more than 0 kg, not {format_kg(tare_g)}")
        if tare_g >= pending.gross_g:
            raise NetNotPositive(
                f"tare {format_kg(tare_g)} of vehicle {key} is not below its weigh-in "
                f"{format_kg(pending.gross_g)}; was it unloaded?"
            )
        del self._open[key]
        return pending.ref, Net(
            gross_g=pending.gross_g, tare_g=tare_g, net_g=pending.gross_g - tare_g
        )

    def cancel(self, plate: str) -> str:
        """Drop the plate's open weigh-in (the truck left without weighing out); its ref."""
        key = normalise_plate(plate)
        pending = self._open.pop(key, None)
        if pending is None:
            raise NoOpenWeighIn(f"vehicle {key} has no open weigh-in to cancel")
        return pending.ref

    def pending(self, plate: str) -> WeighIn | None:
        return self._open.get(normalise_plate(plate))

    def open_weigh_ins(self) -> tuple[WeighIn, ...]:
        """Every open weigh-in, by plate."""
        return tuple(self._open[key] for key in sorted(self._open))

    def stored_tare(self, plate: str) -> int | None:
        return self._tares.get(normalise_plate(plate))

    def store_tare(self, plate: str, tare_g: int) -> None:
        """Keep ``tare_g`` as the plate's tare for one-pass weighings later."""
        key = normalise_plate(plate)
        if isinstance(tare_g, bool) or not isinstance(tare_g, int):
            raise InvalidTare(f"a vehicle tare is whole grams, not {tare_g!r}")
        if not 0 < tare_g <= VEHICLE_TARE_MAX_G:
            raise InvalidTare(
                f"a vehicle tare is more than 0 and at most {VEHICLE_TARE_MAX_G // 1_000_000} t, "
                f"not {format_kg(tare_g)}"
            )
        self._tares[key] = tare_g

    def clear_tare(self, plate: str) -> int | None:
        """Forget the plate's stored tare; the tare it had, None when it had none."""
        return self._tares.pop(normalise_plate(plate), None)
