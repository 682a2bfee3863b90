"""Ways into the dispatch service: the HTTP API and the topic consumer."""
