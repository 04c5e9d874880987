"""The network's figures: rollups kept as work is recorded, signed snapshots, merges, charts.

``model.py`` is the vocabulary every other part of this room speaks (pure).
"""
