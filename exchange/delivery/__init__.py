"""Delivery: getting every outbox row to its member exactly once in effect.

Split as Synapse splits its federation sender: ``fanout`` is the node's registry (one sender
per peer member, the channel pool, wakes routed to the right sender); ``sender`` is one peer's
loop and stream (PerDestinationQueue); ``batches`` seals the next batch and resends unreceipted
ones byte for byte, and ``receipts`` verifies and applies receipts once (together, the
TransactionManager). ``backoff`` paces retries to an unreachable peer; ``leases`` lets several
replicas on one PostgreSQL database agree which of them streams to each peer. Their SQL is in
exchange/store/outbox.py and exchange/store/peers.py.
"""
