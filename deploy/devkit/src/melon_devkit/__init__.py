"""Runs Melon Hall on one machine without Docker: the Kafka broker from Maven jars, the services
as separate processes, and a demo feed. Used by ``make run`` and by the end-to-end tests."""
