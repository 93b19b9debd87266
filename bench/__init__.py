"""Load benchmarks and the comparison with Feast (scripts, not part of the distribution).

Run the scripts from the repository root: ``.venv/bin/python bench/compare.py``,
``.venv/bin/python bench/batchget.py``, ``locust -f bench/locustfile.py``.
"""
