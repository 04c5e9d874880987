"""Moving a case: the holder's ``moved`` action re-assigns the moved items to the member that
serves their new hosting country, with the case's history and the origins' own evidence.

* ``outgoing`` — at the old holder, in the ``moved`` event's transaction: one transfer per
  report whose items moved, queued in the durable outbox for the new member;
* ``checks`` — what the new member verifies before it believes a transfer (the signer held the
  report by the origin's own signed word, the evidence verifies against the origin's key, the
  country is one it serves, the items are the report's);
* ``arrivals`` — at the new member, in the receiver's transaction: the case opened or merged,
  linked to the old one, the reports stored with their evidence, the items unassessed with a
  fresh takedown clock, and a signed take-over to every origin and the coordinator.

Events of the new holder are accepted at the origins and the coordinator through
``lifecycle/inbound`` (a take-over only from the member the ``moved`` event named).
"""
