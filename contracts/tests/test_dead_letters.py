"""A dead letter can be built for any record a reader meets, and stays small enough to file."""

from __future__ import annotations

import pytest

from melon_contracts.codec import encode
from melon_contracts.envelope import CORRELATION_ID_MAX_CHARS
from melon_contracts.events import (
    DEAD_LETTER_KEY_CHARS,
    DEAD_LETTER_PAYLOAD_CHARS,
    DEAD_LETTER_REASON_CHARS,
    DeadLettered,
)
from melon_contracts.topics import DISPATCH_YARD, SCALE_READINGS, TOPICS, TopicSpec, by_name
from melon_contracts.transport import dead_letter

BROKER_RECORD_LIMIT_BYTES = 1_048_588
"""Kafka's default ``message.max.bytes``, which the hall's broker and its topics keep."""

KEYS: list[tuple[str, bytes | None]] = [
    ("no key", None),
    ("empty key", b""),
    ("a plate", "甘H12345".encode()),
    ("65 characters", b"k" * 65),
    ("1000 characters", b"k" * 1000),
    ("80 digits, as a producer's typo", b"0" * 80),
    ("not UTF-8", b"\xff\xfe\x00garbage\x80"),
    ("near the record limit", b"\x01" * (BROKER_RECORD_LIMIT_BYTES - 100)),
]
VALUES: list[tuple[str, bytes | None]] = [
    ("no value (a tombstone)", None),
    ("empty value", b""),
    ("not JSON", b"\x01garbage"),
    ("not UTF-8", b"\xc3\x28\xa0\xa1" * 1000),
    ("near the record limit, control bytes", b"\x00" * (BROKER_RECORD_LIMIT_BYTES - 100)),
    ("near the record limit, four-byte characters", "🍈".encode() * 262_000),
]


@pytest.mark.parametrize("key", [k for _, k in KEYS], ids=[name for name, _ in KEYS])
@pytest.mark.parametrize("value", [v for _, v in VALUES], ids=[name for name, _ in VALUES])
def test_any_record_gives_a_valid_letter_far_below_the_record_limit(
    key: bytes | None, value: bytes | None
) -> None:
    letter = dead_letter(
        "dispatch", DISPATCH_YARD, 0, 123_456_789, key, value, "why: " + "x" * 100_000
    )

    # The letter validates as it will be read back, and fits any topic's records many times over
    again = by_name(DISPATCH_YARD.dlq).adapter.validate_json(encode(letter))
    assert again == letter
    assert len(encode(letter)) < BROKER_RECORD_LIMIT_BYTES // 8
    assert len(letter.key or "") <= DEAD_LETTER_KEY_CHARS
    assert len(letter.payload) <= DEAD_LETTER_PAYLOAD_CHARS
    assert len(letter.reason) <= DEAD_LETTER_REASON_CHARS
    assert letter.key_size_bytes == (None if key is None else len(key))
    assert letter.value_size_bytes == (None if value is None else len(value))


def test_a_key_that_is_a_correlation_id_names_the_letter() -> None:
    letter = dead_letter("dispatch", DISPATCH_YARD, 0, 7, "甘H12345".encode(), b"{}", "bad")
    assert letter.correlation_id == "甘H12345"
    assert letter.key == "甘H12345"


@pytest.mark.parametrize(
    "key",
    [None, b"", b"k" * (CORRELATION_ID_MAX_CHARS + 1), b"\xff\xfe"],
    ids=["none", "empty", "too long", "not UTF-8"],
)
def test_a_key_that_cannot_be_a_correlation_id_leaves_the_letter_named_by_its_position(
    key: bytes | None,
) -> None:
    letter = dead_letter("ingest", SCALE_READINGS, 2, 41, key, b"{}", "bad")
    assert letter.correlation_id == "scale.readings:2:41"
    assert (letter.source_topic, letter.partition, letter.offset) == ("scale.readings", 2, 41)


def test_a_long_key_and_value_are_kept_from_their_start() -> None:
    key = b"0" * 80
    value = b"\x01garbage" + b"y" * 50_000
    letter = dead_letter("dispatch", DISPATCH_YARD, 0, 1, key, value, "bad")
    assert letter.key == "0" * 80
    assert letter.payload == ("\x01garbage" + "y" * 50_000)[:DEAD_LETTER_PAYLOAD_CHARS]
    assert letter.value_size_bytes == len(value)


def test_bytes_that_are_not_utf8_are_shown_as_replacement_characters() -> None:
    letter = dead_letter("dispatch", DISPATCH_YARD, 0, 1, b"ab\xffc", b"\xffmelon", "bad")
    assert letter.key == "ab\ufffdc"
    assert letter.payload == "\ufffdmelon"


def test_a_record_rejected_again_gives_the_same_letter_id() -> None:
    # A reader that replays its topic on start, or a second instance, files the same letter.
    first = dead_letter("pricing", DISPATCH_YARD, 0, 9, b"k", b"v", "bad")
    again = dead_letter("pricing", DISPATCH_YARD, 0, 9, b"k", b"v", "bad")
    elsewhere = dead_letter("pricing", DISPATCH_YARD, 0, 10, b"k", b"v", "bad")
    by_other = dead_letter("dispatch", DISPATCH_YARD, 0, 9, b"k", b"v", "bad")
    assert first.event_id == again.event_id
    assert len({first.event_id, elsewhere.event_id, by_other.event_id}) == 3


@pytest.mark.parametrize("spec", TOPICS, ids=[spec.name for spec in TOPICS])
def test_every_topic_position_fits_a_correlation_id(spec: TopicSpec) -> None:
    letter = dead_letter("ingest", spec, 2**31 - 1, 2**63 - 1, None, None, "bad")
    assert isinstance(letter, DeadLettered)
    assert letter.correlation_id == f"{spec.name}:{2**31 - 1}:{2**63 - 1}"
