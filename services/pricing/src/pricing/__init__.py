"""The trading hall: order books per variety x grade, matching, and the price board.

Two processes: the matcher worker (faust-streaming) owns the books; the API takes merchants' bids
onto ``book.commands`` and serves the price board it reads from ``board.updates``.
"""
