"""How the world reaches pricing: the HTTP API and the worker's command line."""
