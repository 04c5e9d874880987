"""Delivery: getting every outbox row to its member exactly once in effect.

One sender per peer streams sealed batches and applies signed receipts; ``backoff`` paces
retries to an unreachable peer; ``leases`` lets several replicas on one PostgreSQL database agree
which of them streams to each peer.
"""
