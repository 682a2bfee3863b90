"""``melon-ingest``: the weigh stations' service and its tools.

- ``melon-ingest`` (or ``melon-ingest api``): the API, console, grader and audit trail in one
  process;
- ``melon-ingest audit verify|export``: check or export the hash-chained audit trail;
- ``melon-ingest profiles check FILE...``: check grading profile files before activating them;
- ``melon-ingest profiles activate FILE --operator ID``: activate one on a running service.

The scale gateway is its own process: ``python -m ingest.gateway``.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

import uvicorn

from ingest.bootstrap import build
from ingest.domain.grading import check_profile_file, load_profile
from ingest.entrypoints.http import create_app
from ingest.ledger import audit_main
from ingest.settings import Settings
from melon_contracts.transport import configure_logging


def serve() -> None:
    settings = Settings()
    configure_logging(settings.log_level)
    service = build(settings)
    # log_config=None keeps uvicorn's loggers on the root handler, so every line has one format.
    uvicorn.run(
        create_app(service),
        host=settings.host,
        port=settings.port,
        log_config=None,
        log_level=settings.log_level.lower(),
    )


def check_profiles(paths: list[str]) -> int:
    if not paths:
        print("usage: melon-ingest profiles check FILE...", file=sys.stderr)
        return 2
    failed = 0
    for path in paths:
        problems = check_profile_file(Path(path))
        if problems:
            failed += 1
            print(f"{path}: {len(problems)} problem(s)")
            for problem in problems:
                print(f"  - {problem}")
        else:
            print(f"{path}: ok")
    return 1 if failed else 0


def activate_profile(args: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="melon-ingest profiles activate",
        description="Activate a grading profile file on a running ingest service (audited).",
    )
    parser.add_argument("file", type=Path)
    parser.add_argument("--operator", required=True, help="who activates it (the audit trail)")
    parser.add_argument("--url", default="http://127.0.0.1:8001", help="the ingest service")
    options = parser.parse_args(args)
    problems = check_profile_file(options.file)
    if problems:
        print(f"{options.file}: not activated, {len(problems)} problem(s)")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    profile = load_profile(options.file)
    body = json.dumps({"profile": profile.to_dict(), "operator_id": options.operator}).encode()
    request = urllib.request.Request(
        f"{options.url}/grading-profiles",
        data=body,
        headers={"content-type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        print(f"refused ({exc.code}): {exc.read().decode('utf-8', 'replace')}")
        return 1
    except urllib.error.URLError as exc:
        print(f"no ingest service at {options.url}: {exc.reason}")
        return 1
    print(f"active: {answer['profile_id']} version {answer['version']} (digest {answer['digest']})")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] == "api":
        serve()
        return 0
    if args[0] == "audit":
        return audit_main(args[1:])
    if args[:2] == ["profiles", "check"]:
        return check_profiles(args[2:])
    if args[:2] == ["profiles", "activate"]:
        return activate_profile(args[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
