"""Bytes on the wire: UTF-8 JSON values validated by the topic's model, UTF-8 string keys."""

from __future__ import annotations

from pydantic import ValidationError

from melon_contracts.envelope import Message
from melon_contracts.topics import TopicSpec


class UndecodableMessage(ValueError):
    """A record whose bytes do not form a valid value for its topic."""


def encode(message: Message) -> bytes:
    return message.model_dump_json().encode("utf-8")


def encode_key(key: str) -> bytes:
    return key.encode("utf-8")


def decode(spec: TopicSpec, data: bytes | None) -> Message:
    if data is None:
        raise UndecodableMessage(f"empty value on {spec.name}")
    try:
        return spec.adapter.validate_json(data)
    except ValidationError as exc:
        errors = exc.errors()
        # An event of another kind fails on every field; its type is the fault worth naming.
        first = next((error for error in errors if error["loc"] == ("type",)), errors[0])
        where = ".".join(str(part) for part in first["loc"]) or "value"
        what = first["msg"]
        if first["loc"] == ("type",) and isinstance(first.get("input"), str):
            what += f", got {first['input'][:64]!r}"
        raise UndecodableMessage(
            f"invalid {spec.name} value at {where}: {what} ({exc.error_count()} errors)"
        ) from exc


def decode_key(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", errors="replace")
