"""Storage of a node: SQLAlchemy 2 schema, engine set-up, the group-commit writer, and one module
per aggregate owning every statement on its tables (reports, cases, hash_index, inbox, partners,
routing_log; the outbox and peers on the delivery side). Nothing outside this package runs SQL."""
