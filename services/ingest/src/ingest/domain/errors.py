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
