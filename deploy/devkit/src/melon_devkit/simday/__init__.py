"""A trading day at Melon Hall, simulated through the hall's front doors.

``python -m melon_devkit.simday`` (or ``melon-simday``) draws up a day from a seed and runs it
against a running hall (``make run``): farmers' lots in the morning rush, weighed on the
simulated platform scales, which speak their real wire formats to the scale gateway; merchants
bidding by strategy with their demo tokens; trucks at the gate; a yard office taking the
suggested loads and sending trucks out. It never writes a Kafka topic: everything goes through
the scale simulator's control API and the services' HTTP APIs, so the day shows up on the price
board, the LED wall and the dispatch board as a real one would.
"""

from melon_devkit.simday.cli import demo_day, main
from melon_devkit.simday.plan import DayPlan, make_plan
from melon_devkit.simday.runner import Summary, Urls, run_day

__all__ = ["DayPlan", "Summary", "Urls", "demo_day", "main", "make_plan", "run_day"]
