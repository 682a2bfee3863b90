"""Pure market logic: no Kafka, HTTP, environment or clock."""
