"""The wire: protobuf in and out, and nothing else.

``codec`` is the one converter between ``ihx.v1`` messages and the domain model; ``envelope``
seals and opens signed batches and receipts over the exact bytes received; ``known_fields``
refuses bytes the schema does not define. No module outside this package and the edge builds or
reads a protobuf message field by field.
"""
