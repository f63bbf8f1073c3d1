"""Benchmarks of the core (issue 12): `python -m bench [--quick] [--only C1,C2]`."""
