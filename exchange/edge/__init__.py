"""The gRPC edge: where requests enter the node and errors leave it as statuses.

Interceptors run in order — ``admission`` (bounded workers and streams per service, peer and
client), ``access`` (tokens and scopes), ``decoding`` (malformed and unknown-field requests) —
then the thin servicers, which convert with the codec, call the node's components and map every
error once through ``status``. Nothing below this package imports ``grpc``'s server side.
"""
