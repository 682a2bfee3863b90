"""Pure rules of the weigh stations: no Kafka, HTTP, environment or clock in here."""
