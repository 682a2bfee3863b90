"""Why the weigh stations refuse a request, as a small named hierarchy.

The reference data's ``UnknownVariety`` (a ``ValueError``) is reused as it is rather than wrapped.
Errors a consumer may meet on a record are also ``ValueError``s, so the topic reader sends that
record to the dead-letter topic instead of stopping.
"""

from __future__ import annotations


class IngestError(Exception):
    """Base of every refusal the ingest service gives."""


class InvalidLot(IngestError, ValueError):
    """A weighing whose measurements break the rules (weight, crates, Brix readings)."""


class UnknownStation(InvalidLot):
    """A weighing from a station this hall does not run."""


class LotAlreadyWeighed(IngestError, ValueError):
    """A lot id that was already weighed with different content; a lot is weighed once."""


class UnknownLot(IngestError, LookupError):
    """No lot with that id has been weighed."""


class UnknownTicket(IngestError, LookupError):
    """No ticket with that number was issued at that station."""


class WrongStationKind(IngestError, ValueError):
    """A crate weighing at a truck scale, or a truck pass at a platform scale."""


class StationBusy(IngestError, ValueError):
    """The request collides with a weighing in progress (an open truck weigh-in)."""


class ParameterRejected(IngestError, ValueError):
    """A change of a legal parameter (tare, scale, grading profile) that cannot be accepted."""


DomainError = IngestError
"""The root of the weighing rules' refusals (scale, tare, grading): IngestError itself."""


class ReadingOutOfOrder(IngestError, ValueError):
    """A scale reading older than one already observed; a station's readings arrive in order."""


class InvalidScaleConfig(IngestError, ValueError):
    """Legal parameters of a scale that contradict each other (Max, Min, d, bands, windows)."""


class InvalidTare(InvalidLot):
    """A tare or crate type outside the hall's rules (a crate weighs 1 g to 50 kg)."""


class UnknownCrateType(InvalidLot):
    """A crate type that has no tare in the table; ``known`` lists the types that do."""

    def __init__(self, crate_type: str, known: tuple[str, ...]) -> None:
        listed = ", ".join(known) if known else "none"
        super().__init__(f"unknown crate type {crate_type!r}; crate types with a tare: {listed}")
        self.crate_type = crate_type
        self.known = known


class NetNotPositive(InvalidLot):
    """A tare at least as heavy as the gross: the count or type of crates (or the tare) is wrong."""


class InvalidPlate(InvalidLot):
    """A vehicle plate that is empty or too long once normalised."""


class VehicleAlreadyWeighedIn(IngestError):
    """A plate that already has an open weigh-in; it must weigh out (or be cancelled) first."""

    def __init__(self, plate: str, ref: str) -> None:
        super().__init__(
            f"vehicle {plate} is already weighed in for {ref}; weigh it out or cancel that first"
        )
        self.plate = plate
        self.ref = ref


class NoOpenWeighIn(IngestError, LookupError):
    """A weigh-out or cancel for a plate that has no open weigh-in."""


class NoStoredTare(IngestError, LookupError):
    """A weigh-out with the stored tare for a plate that has none stored."""


class InvalidSample(InvalidLot):
    """A quality sample that breaks the rules (Brix readings, fruit weights, defect counts)."""


class UnknownDefectKind(InvalidSample):
    """A defect kind the grading profile does not know; ``known`` lists the kinds it does."""

    def __init__(self, kinds: tuple[str, ...], profile: str, known: tuple[str, ...]) -> None:
        super().__init__(
            f"unknown defect kind {', '.join(map(repr, kinds))} for profile {profile}; "
            f"known kinds: {', '.join(known)}"
        )
        self.kinds = kinds
        self.known = known


class InvalidProfile(IngestError, ValueError):
    """A grading profile that cannot be used; ``problems`` names each one by file and field."""

    def __init__(self, problems: list[str] | tuple[str, ...]) -> None:
        super().__init__("; ".join(problems))
        self.problems = tuple(problems)
