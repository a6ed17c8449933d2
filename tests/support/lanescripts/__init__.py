"""Tiny lane programs and LaneConfig factories for supervisor and daemon tests."""
