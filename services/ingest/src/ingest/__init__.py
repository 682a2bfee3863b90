"""Melon Hall's ingest service: the weigh stations.

Operators record weighed lots over HTTP; each becomes a ``LotWeighed`` event on ``lots.weighed``.
A grader inside the same process grades every weighed lot by a named, versioned profile and
publishes ``LotGraded`` to ``lots.graded``, which the pricing service reads. A projection rebuilds
the lot read model from both topics on start, so the service keeps no state of its own.
"""
