"""Storage of a node: SQLAlchemy 2 schema, engine set-up, the group-commit writer."""
