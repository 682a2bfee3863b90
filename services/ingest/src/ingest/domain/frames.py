"""Scale indicator wire formats: bytes from an indicator in, weight frames out, and back.

Two protocols the hall's indicators speak: Mettler Toledo MT-SICS weight responses (text lines
ending CR LF) and the Yaohua XK3190 continuous output (tf=0: a 12-byte STX ... ETX frame). The
decoders are pure state machines fed whatever chunks a socket delivers: a frame may arrive split
across chunks, noise may sit between frames, and a stream that never delimits a frame cannot grow
the buffer, it is dropped as one ``too_long``. A decoder never raises on input; what it cannot use
comes out as a ``Malformed`` with a short reason code, so the gateway can count it and go on.

Weights become integer grams exactly. A value with more decimals than a gram resolves
(``0.0005 kg``) is ``imprecise``, and pounds and ounces are refused: they are not legal for
trade here. The encoders write the same formats; the scale simulator and the tests use them.
See docs/scale-wire-formats.md for the byte-by-byte layouts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal, Protocol

from ingest.domain.errors import IngestError

PROTOCOLS: Final = ("mt-sics", "xk3190")
WireProtocol = Literal["mt-sics", "xk3190"]
Unit = Literal["g", "kg", "t"]

UNIT_EXPONENTS: Final[dict[str, int]] = {"g": 0, "kg": 3, "t": 6}
"""Grams in one unit, as a power of ten: exact integer arithmetic, no floats and no Decimal."""

_TEN_TO: Final[tuple[int, ...]] = tuple(10**n for n in range(16))

RAW_MAX: Final = 64
"""The longest ``raw`` text kept with a frame; the contract's ``ScaleReading.raw`` limit."""

MTSICS_MAX_LINE: Final = 64
"""Bytes an MT-SICS weight line may take before its LF; a weight line is about 20."""

XK3190_FRAME_LEN: Final = 12
STX: Final = 0x02
ETX: Final = 0x03
CR: Final = 0x0D
LF: Final = 0x0A

MalformedReason = Literal[
    "too_long",
    "bad_bytes",
    "bad_terminator",
    "unknown_command",
    "bad_value",
    "bad_unit",
    "imprecise",
    "indicator_busy",
    "indicator_syntax_error",
    "indicator_transmission_error",
    "indicator_logical_error",
    "garbage",
    "truncated",
    "bad_length",
    "bad_checksum",
    "bad_sign",
    "bad_digits",
    "bad_decimals",
]


class WireFormatError(IngestError, ValueError):
    """A protocol or unit the gateway does not speak, or a value a frame cannot carry."""


@dataclass(frozen=True)
class Frame:
    """One reading an indicator sent.

    ``value_g`` is None exactly when the indicator reported overload or underload. ``stable`` is
    the indicator's own motion flag (False when the protocol has none); Melon Hall decides
    stability itself and keeps the flag as evidence.
    """

    value_g: int | None
    stable: bool
    overload: bool
    underload: bool
    raw: str


@dataclass(frozen=True)
class Malformed:
    """Bytes that did not make a usable reading, with a short reason code (see MalformedReason)."""

    reason: str
    raw: str


Decoded = Frame | Malformed


class Decoder(Protocol):
    """A stream decoder: feed it chunks in arrival order, take the frames completed so far."""

    @property
    def protocol(self) -> str: ...

    def feed(self, data: bytes) -> list[Frame | Malformed]: ...


def _printable_map() -> dict[int, str]:
    """Latin-1 code points of the bytes that are not printable ASCII, mapped to their names."""
    names = {0x00: "NUL", STX: "STX", ETX: "ETX", 0x09: "TAB", LF: "LF", CR: "CR", 0x1B: "ESC"}
    return {
        byte: f"<{names[byte]}>" if byte in names else f"<x{byte:02X}>"
        for byte in range(256)
        if not 0x20 <= byte <= 0x7E
    }


_PRINTABLE: Final = _printable_map()


def printable(data: bytes | bytearray) -> str:
    """Bytes as text for logs and the audit trail: control bytes named (``<STX>``), at most 64."""
    text = bytes(data[:RAW_MAX]).decode("latin-1").translate(_PRINTABLE)
    if len(text) > RAW_MAX:
        text = text[: RAW_MAX - 3] + "..."
    return text


def to_grams(negative: bool, integer: str, fraction: str, unit: str) -> int | None:
    """``[-]integer.fraction unit`` as exact grams, or None if it needs finer than a gram.

    ``unit`` must be a key of UNIT_EXPONENTS; the digit strings must be ASCII digits.
    """
    exponent = UNIT_EXPONENTS[unit]
    kept, dropped = fraction[:exponent], fraction[exponent:]
    if dropped.strip("0"):
        return None
    grams = int(integer or "0") * _TEN_TO[exponent] + int(kept.ljust(exponent, "0") or "0")
    return -grams if negative else grams


def _scaled(value_g: int, unit: str, decimals: int) -> int:
    """``value_g`` in ``unit`` times ``10**decimals``, refusing a value that would need rounding."""
    if unit not in UNIT_EXPONENTS:
        raise WireFormatError(f"unit {unit!r} is not one of g, kg, t")
    shift = decimals - UNIT_EXPONENTS[unit]
    if shift >= 0:
        return value_g * _TEN_TO[shift]
    step = _TEN_TO[-shift]
    if value_g % step:
        raise WireFormatError(f"{value_g} g cannot be written in {unit} with {decimals} decimals")
    return value_g // step


_MTSICS_IDS: Final = frozenset({b"S", b"SI", b"SIR"})
_MTSICS_ERRORS: Final[dict[bytes, MalformedReason]] = {
    b"ES": "indicator_syntax_error",
    b"ET": "indicator_transmission_error",
    b"EL": "indicator_logical_error",
}
_MTSICS_WEIGHT: Final = re.compile(
    rb"(?:S|SI|SIR) ([SD]) +(-?)(\d{1,10})(?:\.(\d{1,10}))? +([!-~]+) *"
)
_UNIT_NAMES: Final = frozenset(unit.encode("ascii") for unit in UNIT_EXPONENTS)
_MTSICS_NUMBER: Final = re.compile(rb"-?\d{1,10}(?:\.\d{1,10})?")


class MtSicsDecoder:
    """Mettler Toledo MT-SICS weight responses: ``S S``/``S D`` weights, ``S +``/``S -``, errors.

    The response id may be ``S`` (what MT-SICS sends for S, SI and SIR) or an echoed ``SI`` /
    ``SIR``. Empty lines are skipped; a line must end CR LF.
    """

    protocol: Final = "mt-sics"

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._discarding = False

    def feed(self, data: bytes) -> list[Frame | Malformed]:
        buffer = self._buffer
        buffer += data
        out: list[Frame | Malformed] = []
        start = 0
        while True:
            end = buffer.find(LF, start)
            if self._discarding:
                if end < 0:
                    start = len(buffer)
                    break
                self._discarding = False
                start = end + 1
                continue
            if end < 0:
                if len(buffer) - start > MTSICS_MAX_LINE:
                    out.append(Malformed("too_long", printable(buffer[start : start + RAW_MAX])))
                    self._discarding = True
                    start = len(buffer)
                break
            line = bytes(buffer[start:end])
            start = end + 1
            if len(line) > MTSICS_MAX_LINE:
                out.append(Malformed("too_long", printable(line)))
            elif not line.endswith(b"\r"):
                out.append(Malformed("bad_terminator", printable(line)))
            elif len(line) > 1:
                out.append(self._line(line[:-1]))
        del buffer[:start]
        return out

    @staticmethod
    def _line(line: bytes) -> Frame | Malformed:
        match = _MTSICS_WEIGHT.fullmatch(line)
        if match is not None:
            status, sign, integer, fraction, unit = match.groups()
            unit_text = unit.decode("ascii")
            if unit_text not in UNIT_EXPONENTS:
                return Malformed("bad_unit", printable(line))
            grams = to_grams(sign == b"-", integer.decode(), (fraction or b"").decode(), unit_text)
            if grams is None:
                return Malformed("imprecise", printable(line))
            return Frame(grams, status == b"S", False, False, printable(line))
        fields = [field for field in line.split(b" ") if field]
        if len(fields) == 2 and fields[0] in _MTSICS_IDS and fields[1] in (b"+", b"-"):
            over = fields[1] == b"+"
            return Frame(None, False, over, not over, printable(line))
        return Malformed(_mtsics_refusal(line, fields), printable(line))


def _mtsics_refusal(line: bytes, fields: list[bytes]) -> MalformedReason:
    """Why a line that is neither a weight nor an overload or underload cannot be used."""
    if any(byte < 0x20 or byte > 0x7E for byte in line):
        return "bad_bytes"
    if len(fields) == 1 and fields[0] in _MTSICS_ERRORS:
        return _MTSICS_ERRORS[fields[0]]
    if len(fields) < 2 or fields[0] not in _MTSICS_IDS:
        return "unknown_command"
    status = fields[1]
    if status in (b"S", b"D"):
        well_formed = len(fields) == 4 and _MTSICS_NUMBER.fullmatch(fields[2]) is not None
        return "bad_unit" if well_formed and fields[3] not in _UNIT_NAMES else "bad_value"
    if status == b"I" and len(fields) == 2:
        return "indicator_busy"
    return "unknown_command"


_DIGITS: Final = frozenset(b"0123456789")
_XK3190_DECIMALS: Final = frozenset(b"01234")


def xk3190_checksum(body: bytes) -> bytes:
    """XOR of the sign, weight and decimal bytes, high nibble then low nibble as ``0-9A-F``."""
    check = 0
    for byte in body:
        check ^= byte
    return b"%02X" % check


class Xk3190Decoder:
    """Yaohua XK3190 continuous output, tf=0: STX, sign, 6 digits, decimals, 2 checksum, ETX.

    The frame carries no motion flag, so every frame is ``stable=False``. ``unit`` is what the
    indicator is configured to show (kg unless told otherwise).
    """

    protocol: Final = "xk3190"

    def __init__(self, unit: str = "kg") -> None:
        if unit not in UNIT_EXPONENTS:
            raise WireFormatError(f"unit {unit!r} is not one of g, kg, t (lb and oz are refused)")
        self._unit = unit
        self._buffer = bytearray()
        self._discarding = False

    def feed(self, data: bytes) -> list[Frame | Malformed]:
        buffer = self._buffer
        buffer += data
        out: list[Frame | Malformed] = []
        size = XK3190_FRAME_LEN
        pos = 0
        while True:
            begin = buffer.find(STX, pos)
            if self._discarding:
                if begin < 0:
                    pos = len(buffer)
                    break
                self._discarding = False
                pos = begin
            if begin < 0:
                if len(buffer) - pos > size:
                    out.append(Malformed("too_long", printable(buffer[pos : pos + RAW_MAX])))
                    self._discarding = True
                    pos = len(buffer)
                break
            if begin > pos:
                reason: MalformedReason = "too_long" if begin - pos > size else "garbage"
                out.append(Malformed(reason, printable(buffer[pos:begin])))
                pos = begin
            window_end = min(pos + size, len(buffer))
            restart = buffer.find(STX, pos + 1, window_end)
            close = buffer.find(ETX, pos + 1, window_end)
            if restart >= 0 and (close < 0 or restart < close):
                out.append(Malformed("truncated", printable(buffer[pos:restart])))
                pos = restart
            elif 0 <= close < pos + size - 1:
                out.append(Malformed("bad_length", printable(buffer[pos : close + 1])))
                pos = close + 1
            elif close == pos + size - 1:
                out.append(self._frame(bytes(buffer[pos : pos + size])))
                pos += size
            elif len(buffer) >= pos + size:
                out.append(Malformed("too_long", printable(buffer[pos : pos + RAW_MAX])))
                self._discarding = True
                pos += 1
            else:
                break
        del buffer[:pos]
        return out

    def _frame(self, frame: bytes) -> Frame | Malformed:
        raw = printable(frame)
        body = frame[1:9]
        if frame[9:11] != xk3190_checksum(body):
            return Malformed("bad_checksum", raw)
        sign, digits, decimals = frame[1], frame[2:8], frame[8]
        if sign not in b"+-":
            return Malformed("bad_sign", raw)
        if not _DIGITS.issuperset(digits):
            return Malformed("bad_digits", raw)
        if decimals not in _XK3190_DECIMALS:
            return Malformed("bad_decimals", raw)
        places = decimals - 0x30
        text = digits.decode("ascii")
        grams = to_grams(sign == 0x2D, text[: 6 - places], text[6 - places :], self._unit)
        if grams is None:
            return Malformed("imprecise", raw)
        return Frame(grams, False, False, False, raw)


def decoder_for(protocol: str, *, unit: str = "kg") -> Decoder:
    """A fresh decoder for ``protocol`` (one of PROTOCOLS); ``unit`` applies to XK3190 only."""
    if protocol == "mt-sics":
        return MtSicsDecoder()
    if protocol == "xk3190":
        return Xk3190Decoder(unit)
    raise WireFormatError(f"unknown scale protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")


def default_decimals(unit: str) -> int:
    """Decimals that show ``unit`` to the gram: 0 for g, 3 for kg, 6 for t."""
    if unit not in UNIT_EXPONENTS:
        raise WireFormatError(f"unit {unit!r} is not one of g, kg, t")
    return UNIT_EXPONENTS[unit]


def encode_mtsics(
    value_g: int | None,
    stable: bool,
    *,
    overload: bool = False,
    underload: bool = False,
    unit: str = "kg",
    decimals: int | None = None,
) -> bytes:
    """An MT-SICS weight response line, CR LF included.

    The value field is right-aligned in 10 characters, as MT-SICS indicators send it.
    ``decimals`` defaults to gram resolution in ``unit``; a value that would need rounding to
    fit is refused rather than rounded.
    """
    if overload and underload:
        raise WireFormatError("a reading is not overload and underload at once")
    if overload:
        return b"S +\r\n"
    if underload:
        return b"S -\r\n"
    if value_g is None:
        raise WireFormatError("a reading without a value must be an overload or an underload")
    places = default_decimals(unit) if decimals is None else decimals
    if not 0 <= places <= 6:
        raise WireFormatError(f"decimals must be 0-6, not {places}")
    scaled = _scaled(value_g, unit, places)
    magnitude = str(abs(scaled)).rjust(places + 1, "0")
    text = magnitude[: len(magnitude) - places]
    if places:
        text += "." + magnitude[len(magnitude) - places :]
    if scaled < 0:
        text = "-" + text
    if len(text) > 10:
        raise WireFormatError(f"{value_g} g does not fit the 10-character MT-SICS value field")
    status = "S" if stable else "D"
    return f"S {status} {text:>10} {unit}\r\n".encode("ascii")


def encode_xk3190(value_g: int, decimals: int, *, unit: str = "kg") -> bytes:
    """An XK3190 tf=0 frame: ``value_g`` shown in ``unit`` with ``decimals`` (0-4) places."""
    if not 0 <= decimals <= 4:
        raise WireFormatError(f"XK3190 shows 0-4 decimals, not {decimals}")
    scaled = _scaled(value_g, unit, decimals)
    if abs(scaled) > 999_999:
        raise WireFormatError(f"{value_g} g needs more than the XK3190's 6 digits")
    body = b"%c%06d%d" % (b"-"[0] if scaled < 0 else b"+"[0], abs(scaled), decimals)
    return bytes([STX]) + body + xk3190_checksum(body) + bytes([ETX])
