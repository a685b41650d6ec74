"""Benchmarks behind `eegmamba benchmark`: each module returns rows (dicts) for tables, CSV and plots."""
