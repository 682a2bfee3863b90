"""Melon Hall's shared contracts: the only code the services have in common.

Events are past-tense facts (``events``), commands are requests (``commands``); the topic registry
(``topics``) names every topic once with its key, value model, partitions, cleanup policy and single
writer. Weights travel as integer grams and money as integer fen, never as binary floats.
"""
