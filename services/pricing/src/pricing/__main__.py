"""``melon-pricing api`` serves the HTTP API; ``melon-pricing worker`` runs the matcher;
``melon-pricing merchants add|list`` keeps the merchant accounts; ``melon-pricing replay`` runs the
market again from ``book.commands`` and compares it with the topics."""

from __future__ import annotations

import logging
import sys

import uvicorn

from melon_contracts.transport import configure_logging
from pricing.settings import Settings


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    role = args[0] if args else ""
    if role == "merchants":
        from pricing.accounts import main as merchants

        return merchants(args[1:])
    if role == "replay":
        from pricing.replay import main as replay

        return replay(args[1:])
    settings = Settings()
    configure_logging(settings.log_level)
    if role == "api":
        from pricing.bootstrap import build
        from pricing.entrypoints.http import create_app

        app = create_app(build(settings))
        # Open board streams would hold a plain shutdown forever; give them 5 s.
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,
            timeout_graceful_shutdown=5,
        )
        return 0
    if role == "worker":
        from prometheus_client import start_http_server

        from pricing.app import app as worker

        if settings.worker_metrics_port:
            start_http_server(settings.worker_metrics_port, addr=settings.host)

        # No faust web server: the worker has no pages, and two workers must not fight over a port.
        sys.argv = [
            "melon-pricing worker",
            "worker",
            "--without-web",
            "--loglevel",
            settings.log_level.lower(),
        ]
        worker.main()
        return 0
    logging.getLogger("pricing").error("usage: melon-pricing api|worker|merchants|replay")
    return 2


if __name__ == "__main__":
    sys.exit(main())
