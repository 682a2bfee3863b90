"""Dispatch's bridges to outside libraries, kept apart from the pure domain."""
