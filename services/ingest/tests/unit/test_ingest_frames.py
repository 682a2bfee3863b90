"""The scale wire formats: every frame kind decodes to exact grams; no input breaks a decoder."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from ingest.domain.errors import IngestError
from ingest.domain.frames import (
    PROTOCOLS,
    RAW_MAX,
    Decoder,
    Frame,
    Malformed,
    MtSicsDecoder,
    WireFormatError,
    Xk3190Decoder,
    decoder_for,
    encode_mtsics,
    encode_xk3190,
    printable,
    xk3190_checksum,
)


def feed_all(decoder: Decoder, data: bytes) -> list[Frame | Malformed]:
    return decoder.feed(data)


def feed_in_chunks(decoder: Decoder, data: bytes, sizes: list[int]) -> list[Frame | Malformed]:
    out: list[Frame | Malformed] = []
    position = 0
    for size in sizes:
        out += decoder.feed(data[position : position + size])
        position += size
    out += decoder.feed(data[position:])
    return out


def xk(body: bytes, checksum: bytes | None = None) -> bytes:
    """An XK3190 frame around ``body`` (sign, 6 digits, decimals), with its checksum by default."""
    return b"\x02" + body + (xk3190_checksum(body) if checksum is None else checksum) + b"\x03"


@pytest.mark.parametrize(
    ("line", "value_g", "stable"),
    [
        (b"S S     412.44 kg", 412_440, True),
        (b"S D     412.44 kg", 412_440, False),
        (b"S D      -0.06 kg", -60, False),
        (b"S S         -0 kg", 0, True),
        (b"S S        125 g", 125, True),
        (b"S S   1.234567 t", 1_234_567, True),
        (b"S S   2.5 t", 2_500_000, True),
        (b"S S     0.0010 kg", 1, True),
        (b"S S 17 kg", 17_000, True),
        (b"SI D      3.50 kg", 3_500, False),
        (b"SIR S     3.50 kg  ", 3_500, True),
    ],
    ids=[
        "stable-kg",
        "dynamic-kg",
        "negative",
        "minus-zero",
        "grams",
        "tonnes-to-the-gram",
        "tonnes",
        "trailing-zero-beyond-the-gram",
        "single-spaces",
        "si-echo",
        "sir-echo-trailing-spaces",
    ],
)
def test_mtsics_weight_lines_become_exact_grams(line: bytes, value_g: int, stable: bool) -> None:
    assert MtSicsDecoder().feed(line + b"\r\n") == [
        Frame(value_g=value_g, stable=stable, overload=False, underload=False, raw=line.decode())
    ]


@pytest.mark.parametrize(
    ("line", "overload", "underload"),
    [(b"S +", True, False), (b"S -", False, True), (b"SI +", True, False)],
    ids=["overload", "underload", "si-overload"],
)
def test_mtsics_overload_and_underload_carry_no_value(
    line: bytes, overload: bool, underload: bool
) -> None:
    [frame] = MtSicsDecoder().feed(line + b"\r\n")
    assert frame == Frame(None, False, overload, underload, line.decode())


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"S S     0.0005 kg\r\n", "imprecise"),
        (b"S S      0.5 g\r\n", "imprecise"),
        (b"S S      1.000 lb\r\n", "bad_unit"),
        (b"S S         12 oz\r\n", "bad_unit"),
        (b"S S         12 KG\r\n", "bad_unit"),
        (b"S S    12.3.4 kg\r\n", "bad_value"),
        (b"S S        +12 kg\r\n", "bad_value"),
        (b"S S       12. kg\r\n", "bad_value"),
        (b"S S kg\r\n", "bad_value"),
        (b"S S 12 kg extra\r\n", "bad_value"),
        (b"S I\r\n", "indicator_busy"),
        (b"ES\r\n", "indicator_syntax_error"),
        (b"ET\r\n", "indicator_transmission_error"),
        (b"EL\r\n", "indicator_logical_error"),
        (b"Z A\r\n", "unknown_command"),
        (b"S X\r\n", "unknown_command"),
        (b"S\r\n", "unknown_command"),
        (b"S S \xff\xfe kg\r\n", "bad_bytes"),
        (b"S\tS 12 kg\r\n", "bad_bytes"),
        (b"S S 12 kg\n", "bad_terminator"),
        (b"S" * 70 + b"\r\n", "too_long"),
    ],
)
def test_mtsics_lines_that_are_not_readings_are_malformed(data: bytes, reason: str) -> None:
    [item] = MtSicsDecoder().feed(data)
    assert isinstance(item, Malformed)
    assert item.reason == reason


def test_mtsics_skips_empty_lines() -> None:
    assert MtSicsDecoder().feed(b"\r\n\r\nS S 1 kg\r\n\r\n") == [
        Frame(1000, True, False, False, "S S 1 kg")
    ]


@pytest.mark.parametrize(
    ("frame", "value_g", "unit"),
    [
        (b"\x02+00200021B\x03", 20_000, "kg"),
        (xk(b"+0412442"), 412_440, "kg"),
        (xk(b"-0000062"), -60, "kg"),
        (xk(b"+1234563"), 123_456, "kg"),
        (xk(b"+0000100"), 10_000, "kg"),
        (xk(b"+0000504"), 5, "kg"),
        (xk(b"+0012340"), 1_234, "g"),
        (xk(b"+0123454"), 1_234_500, "t"),
        (xk(b"-0000000"), 0, "kg"),
    ],
    ids=[
        "manual-sample-20kg",
        "two-decimals",
        "negative",
        "three-decimals",
        "no-decimals",
        "four-decimals-whole-gram",
        "grams",
        "tonnes",
        "minus-zero",
    ],
)
def test_xk3190_frames_become_exact_grams(frame: bytes, value_g: int, unit: str) -> None:
    [item] = Xk3190Decoder(unit).feed(frame)
    assert item == Frame(value_g, False, False, False, printable(frame))
    assert item.raw.startswith("<STX>") and item.raw.endswith("<ETX>")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (xk(b"+4124402", b"00"), "bad_checksum"),
        (xk(b"+0020002", b"1b"), "bad_checksum"),
        (xk(b" 4124402"), "bad_sign"),
        (xk(b"+41x4402"), "bad_digits"),
        (xk(b"+4124405"), "bad_decimals"),
        (xk(b"+0000054"), "imprecise"),
        (b"\x02+0012\x02", "truncated"),
        (b"\x02+00123\x03", "bad_length"),
        (b"\x02+00200021B\x00\x03", "too_long"),
        (b"noise\x02", "garbage"),
        (b"0123456789ABCDEF", "too_long"),
    ],
)
def test_xk3190_bytes_that_are_not_frames_are_malformed(data: bytes, reason: str) -> None:
    [item] = Xk3190Decoder().feed(data)
    assert isinstance(item, Malformed)
    assert item.reason == reason


def test_a_checksum_nibble_above_nine_is_a_capital_letter() -> None:
    assert xk3190_checksum(b"+0020002") == b"1B"  # the manual's sample, +20.00
    assert xk3190_checksum(b"+0000000") == b"1B"
    assert xk3190_checksum(b"-0000000") == b"1D"
    assert xk3190_checksum(b"+0000001") == b"1A"
    assert xk3190_checksum(b"+9000000") == b"12"


def stream_of(protocol: str) -> tuple[bytes, list[int | None]]:
    """A stream of readings with overload thrown in, and the values it should decode to."""
    values: list[int | None] = [0, 20, 412_440, -60, 999_980, None, 12_000]
    if protocol == "mt-sics":
        data = b"".join(encode_mtsics(v, True, overload=v is None, decimals=2) for v in values)
        return data, values
    numeric = [v for v in values if v is not None]
    return b"".join(encode_xk3190(v, 2) for v in numeric), list(numeric)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("chunking", ["whole", "byte-by-byte", "random-chunks"])
def test_frames_split_across_chunks_decode_the_same(protocol: str, chunking: str) -> None:
    data, values = stream_of(protocol)
    decoder = decoder_for(protocol)
    if chunking == "whole":
        items = feed_all(decoder, data)
    elif chunking == "byte-by-byte":
        items = feed_in_chunks(decoder, data, [1] * len(data))
    else:
        rng = random.Random(7)
        items = feed_in_chunks(decoder, data, [rng.randint(1, 9) for _ in range(len(data))])
    assert [item.value_g for item in items if isinstance(item, Frame)] == values
    assert not [item for item in items if isinstance(item, Malformed)]


@pytest.mark.parametrize(
    ("protocol", "garbage", "reason"),
    [
        ("mt-sics", b"\x00\xffnoise\r\n", "bad_bytes"),
        ("mt-sics", b"hello\r\n", "unknown_command"),
        ("xk3190", b"\x00\xff\x10", "garbage"),
        ("xk3190", b"\x03\x03", "garbage"),
        ("xk3190", b"\x02+00", "truncated"),
    ],
)
def test_garbage_between_frames_costs_one_malformed_and_no_frame(
    protocol: str, garbage: bytes, reason: str
) -> None:
    first, second = (
        (encode_mtsics(1000, True), encode_mtsics(2000, False))
        if protocol == "mt-sics"
        else (encode_xk3190(1000, 2), encode_xk3190(2000, 2))
    )
    items = decoder_for(protocol).feed(first + garbage + second)
    assert [getattr(item, "value_g", None) for item in items] == [1000, None, 2000]
    assert isinstance(items[1], Malformed) and items[1].reason == reason


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_run_without_delimiter_is_dropped_as_one_too_long(protocol: str) -> None:
    decoder = decoder_for(protocol)
    noise = b"A" * 1000
    items: list[Frame | Malformed] = []
    for _ in range(100):
        items += decoder.feed(noise)
    assert items == [Malformed("too_long", "A" * RAW_MAX)]
    frame = encode_mtsics(5000, True) if protocol == "mt-sics" else encode_xk3190(5000, 2)
    # the delimiter that ends the run (LF, or the next STX) lets the next frame through
    items = decoder.feed(b"\r\n" + frame if protocol == "mt-sics" else frame)
    assert [item.value_g for item in items if isinstance(item, Frame)] == [5000]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_random_bytes_never_break_a_decoder(protocol: str) -> None:
    rng = random.Random(20_240_601)
    decoder = decoder_for(protocol)
    alphabet = bytes(range(256)) + b"\x02\x03\r\n+-.0123456789 SDkg" * 4
    total = 0
    for _ in range(2_000):
        chunk = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        for item in decoder.feed(chunk):
            assert isinstance(item, Frame | Malformed)
            assert len(item.raw) <= RAW_MAX
            total += 1
    assert total > 0
    frame = encode_mtsics(7000, True) if protocol == "mt-sics" else encode_xk3190(7000, 2)
    items = decoder.feed(b"\r\n\x02" + frame + frame)
    assert isinstance(items[-1], Frame) and items[-1].value_g == 7000


def test_a_corrupted_xk3190_frame_never_decodes_to_a_weight() -> None:
    """The checksum catches any one flipped bit; MT-SICS has no checksum, so this is XK3190's."""
    rng = random.Random(99)
    for _ in range(1_000):
        frame = bytearray(encode_xk3190(rng.randrange(-5_000, 50_000) * 20, 2))
        frame[rng.randrange(1, len(frame) - 1)] ^= 1 << rng.randrange(8)
        items = Xk3190Decoder().feed(bytes(frame) + encode_xk3190(0, 2))
        assert items[-1] == Frame(0, False, False, False, printable(encode_xk3190(0, 2)))
        assert all(isinstance(item, Malformed) for item in items[:-1]), items


@pytest.mark.parametrize(
    ("value_g", "unit", "decimals", "expected"),
    [
        (412_440, "kg", 2, b"S S     412.44 kg\r\n"),
        (412_440, "kg", None, b"S S    412.440 kg\r\n"),
        (-60, "kg", 2, b"S S      -0.06 kg\r\n"),
        (0, "kg", 2, b"S S       0.00 kg\r\n"),
        (125, "g", None, b"S S        125 g\r\n"),
        (2_500_000, "t", 1, b"S S        2.5 t\r\n"),
    ],
)
def test_mtsics_encoder_right_aligns_the_value(
    value_g: int, unit: str, decimals: int | None, expected: bytes
) -> None:
    assert encode_mtsics(value_g, True, unit=unit, decimals=decimals) == expected
    [frame] = MtSicsDecoder().feed(expected)
    assert isinstance(frame, Frame) and frame.value_g == value_g


@pytest.mark.parametrize("value_g", [0, 20, -20, 412_440, 999_990, -123_450, 9_999_990])
@pytest.mark.parametrize("stable", [True, False])
def test_encoded_readings_decode_to_what_was_encoded(value_g: int, stable: bool) -> None:
    [mtsics] = MtSicsDecoder().feed(encode_mtsics(value_g, stable, decimals=2))
    assert mtsics == Frame(value_g, stable, False, False, mtsics.raw)
    [xk3190] = Xk3190Decoder().feed(encode_xk3190(value_g, 2))
    assert xk3190 == Frame(value_g, False, False, False, xk3190.raw)


@pytest.mark.parametrize(
    "encode",
    [
        lambda: encode_mtsics(1, True, decimals=2),
        lambda: encode_mtsics(None, True),
        lambda: encode_mtsics(None, True, overload=True, underload=True),
        lambda: encode_mtsics(1000, True, unit="lb"),
        lambda: encode_mtsics(10**12, True),
        lambda: encode_xk3190(10_000_000, 2),
        lambda: encode_xk3190(5, 2),
        lambda: encode_xk3190(5, 5),
        lambda: encode_xk3190(5, 3, unit="oz"),
    ],
    ids=[
        "finer-than-the-decimals",
        "no-value-no-flag",
        "overload-and-underload",
        "pounds",
        "too-wide-for-the-field",
        "seven-digits",
        "xk-finer-than-the-decimals",
        "xk-five-decimals",
        "xk-ounces",
    ],
)
def test_encoders_refuse_what_the_format_cannot_carry(encode: Callable[[], bytes]) -> None:
    with pytest.raises(WireFormatError):
        encode()


def test_wire_format_errors_are_ingest_refusals() -> None:
    assert issubclass(WireFormatError, IngestError)
    assert issubclass(WireFormatError, ValueError)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_decoder_for_every_protocol(protocol: str) -> None:
    assert decoder_for(protocol).protocol == protocol


@pytest.mark.parametrize(
    "make",
    [
        lambda: decoder_for("ascii-scale"),
        lambda: Xk3190Decoder("lb"),
        lambda: decoder_for("xk3190", unit="oz"),
    ],
    ids=["unknown-protocol", "pounds", "ounces"],
)
def test_decoders_refuse_unknown_protocols_and_units(make: Callable[[], Decoder]) -> None:
    with pytest.raises(WireFormatError):
        make()


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"\x02+00200021B\x03", "<STX>+00200021B<ETX>"),
        (b"S S 1 kg\r\n", "S S 1 kg<CR><LF>"),
        (b"\x00\x7f\xff", "<NUL><x7F><xFF>"),
        (b"x" * 100, "x" * 64),
        (b"\x02" * 20, "<STX>" * 12 + "<..."),
    ],
)
def test_raw_text_names_control_bytes_and_stays_short(data: bytes, text: str) -> None:
    assert printable(data) == text
    assert len(text) <= RAW_MAX
