"""Helpers shared by the tests: sim lanes, daemons, fakes, fixture paths."""
