"""``melon-ingest``: run the weigh stations' API, grader and projection in one process."""

from __future__ import annotations

import uvicorn

from ingest.bootstrap import build
from ingest.entrypoints.http import create_app
from ingest.settings import Settings
from melon_contracts.transport import configure_logging


def main() -> None:
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


if __name__ == "__main__":
    main()
