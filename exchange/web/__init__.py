"""``ihx web``: the coordinator's and hotline managers' read-only dashboard (docs/web.md).

Its own process, not a service of the node: browsers are a different surface from the gRPC
exchange — a bug, a flood of requests or a slow page here cannot stop the node exchanging
reports, and the view is deployed and scaled on its own (its own Deployment in the chart). It
reads the node's database through ``open_local`` (SQLite WAL and PostgreSQL both allow readers
beside the running node) and writes only its audit entries, through a ``Writer`` of its own that
continues the node's routing log from its stored head (as ``ihx cases purge`` does).

Rooms: ``sessions`` (server-side sessions; the cookie is a random id), ``gate`` (who is asking:
cookie → session → principal, the scopes of each page, CSRF), ``headers`` (security headers on
every response), ``status`` (error types → HTTP answers, once), ``render`` (Jinja2 templates in
the package, autoescaped), ``audit`` (a case view is a routing-log entry), ``filters`` (the log's
query parameters parsed and bounded), ``pages/`` (one module per page family) and ``app``
(the composition: ``build_app``). ``server`` runs it with uvicorn.
"""
