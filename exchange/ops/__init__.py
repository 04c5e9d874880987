"""Operations: what an operator reads and runs beside the node.

``status`` (the node's state at a glance), ``verify`` (one stored report re-verified on its own),
``metrics`` and ``gauges`` (Prometheus), ``json_logging`` (structured logs; "log" elsewhere means
the routing log) and ``health`` (gRPC health that tells the truth).
"""
