"""qwend tests, one folder per package; shared helpers live in tests.support."""
