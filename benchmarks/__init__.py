"""Benchmarks of caves_faust (`make bench`): each prints one summary line and writes a JSON result."""
