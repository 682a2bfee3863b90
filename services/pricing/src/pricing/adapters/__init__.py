"""Adapters of the pricing service: faust topics, translation to contract events."""
