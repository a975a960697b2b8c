"""Fuzzing every registered parser: the harness (``harness.py``), the short fixed run of the test
suite, the hostile inputs of issue 9 and the regression inputs of every crash found.

``bench/fuzz.py`` runs the same harness for a chosen time with random seeds.
"""
