"""The shared kernel of ihx: what routing, auth and exchange all need and none should own.

Imported by ``routing``, ``auth`` and ``exchange``; imports none of them (nor anything beyond the
standard library), so it can sit beneath all three without a cycle. Keep it small: an error base
class and a clock, not a grab-bag of helpers.
"""
