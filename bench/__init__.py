"""Benchmarks: scripts that print figures beside a baseline run side by side (not tests)."""
