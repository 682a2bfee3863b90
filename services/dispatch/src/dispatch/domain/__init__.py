"""The yard model: shipments, trucks and assignments, with no I/O and no clock."""
