"""Export JSON Schema for every event and command: ``python -m melon_contracts.schemas DIR``.

The exported files are committed under ``contracts/schemas/``; a test fails when they drift from
the models, so people and other languages can rely on them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from melon_contracts.topics import all_topics


def schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema of the values of each topic."""
    result: dict[str, dict[str, Any]] = {}
    for spec in all_topics():
        if spec.dead_letters_of is not None and "dead-letter.json" in result:
            continue
        name = "dead-letter.json" if spec.dead_letters_of else f"{spec.name}.json"
        schema = TypeAdapter(spec.value).json_schema(mode="serialization")
        schema["$comment"] = f"key: {spec.key}; writer: {spec.writer}"
        if spec.dead_letters_of:
            schema["$comment"] = "value of every <topic>.dlq"
        result[name] = schema
    return result


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def export(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in schemas().items():
        path = directory / name
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


def drifted(directory: Path) -> list[str]:
    """Names of exported files that are missing or differ from the models."""
    return [
        name
        for name, schema in schemas().items()
        if not (directory / name).is_file()
        or (directory / name).read_text(encoding="utf-8") != render(schema)
    ]


def main(argv: list[str]) -> int:
    check = "--check" in argv
    paths = [arg for arg in argv if arg != "--check"]
    target = Path(paths[0] if paths else "contracts/schemas")
    if check:
        stale = drifted(target)
        if stale:
            print(f"JSON Schemas out of date: {', '.join(stale)}; run `make schemas`")
            return 1
        print(f"JSON Schemas in {target} match the models")
        return 0
    for path in export(target):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
