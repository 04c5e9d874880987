"""Near-duplicate matching of PDQ hashes (issue 17): the index and the node's use of it.

``codes`` turns hex into 256-bit codes, ``index`` is the pure multi-index-hashing range search,
``persist`` its file; ``matcher`` keeps the node's index over the network's PDQ sightings.
"""
