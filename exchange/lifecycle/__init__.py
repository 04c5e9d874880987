"""The case lifecycle: assessment, actions and outcomes, and how they travel the network.

``model`` is the pure vocabulary (ICCAM's), ``rules`` the pure state machine every node folds
events with; ``work`` is the responsible node's analysts acting on their cases, ``inbound`` a
node applying members' events, ``queues`` and ``views`` what people read.
"""
