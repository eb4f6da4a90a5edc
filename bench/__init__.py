"""Benchmarks of nc against the classic codecs, on real files written and read back."""
