"""The ``ihx`` command line: a thin Typer layer over the node's packages.

``main.py`` holds the application and the single place where errors become exit statuses; one
module per command group registers its commands on it. The logic the commands need lives in
ordinary modules (``exchange.client.report_files``, ``exchange.ops.status``,
``exchange.ops.verify``), so it is tested without a terminal and reusable by the demo and the
benchmarks.
"""
