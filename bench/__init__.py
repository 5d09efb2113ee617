"""Benchmarks of Zart against a bare INSERT+COMMIT and DBOS Transact (``make bench``).

Run with ``make bench``; see ``bench/README.md``. Nothing here is imported by ``zart`` or by the
test suite, and nothing here asserts on timings.
"""
