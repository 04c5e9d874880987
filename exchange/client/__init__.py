"""Clients of a node: typed stubs with tokens (``stubs``) and report files (``report_files``).

Used by the CLI, the demo, the benchmarks and the tests; nothing here runs inside a node.
"""
