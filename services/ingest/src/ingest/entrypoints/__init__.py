"""Ways into the service: the HTTP API and the Kafka consumers."""
