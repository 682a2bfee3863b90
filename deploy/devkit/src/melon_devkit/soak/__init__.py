"""The kill soak: a trading day through the hall's front doors while its processes are killed.

``python -m melon_devkit.soak`` (``make soak``) starts a broker and a hall of its own on free
ports, runs a day of weighings, bids (placed, amended, cancelled), check-ins and assignments
through the simulated scales and the HTTP APIs, and meanwhile SIGKILLs each service and the
broker at seeded moments and starts them again. The clients retry what failed, as people at the
hall would, and note exactly what was acknowledged with a 2xx. Afterwards every acknowledged
operation is looked for on the topics with a plain consumer: present once in effect, nothing
lost, nothing doubled; tickets gapless, no lot oversold, no bid overfilled, no trade on two
trucks, the audit trail intact and the market's replay equal to the topics.

- ``chaos``: the kill schedule and the thread that kills, restarts and times the recovery;
- ``clients``: the hall's users (weigh stations, merchants, the gate, the yard office), who
  retry and record what was acknowledged;
- ``invariants``: what the topics must show, judged from their records, pure;
- ``cli``: the command line, the run, the report.
"""

from melon_devkit.soak.cli import main

__all__ = ["main"]
