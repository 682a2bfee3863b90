"""Run the dispatch service: ``melon-dispatch`` or ``python -m dispatch``."""

from __future__ import annotations

import uvicorn

from dispatch.bootstrap import build
from dispatch.entrypoints.http import create_app
from dispatch.settings import Settings
from melon_contracts.transport import configure_logging


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level)
    app = create_app(build(settings))
    # log_config=None keeps uvicorn's loggers on the format configured above.
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None)


if __name__ == "__main__":
    main()
