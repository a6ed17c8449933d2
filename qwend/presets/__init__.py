"""Shipped presets (package data): ``qwenctl init --preset NAME`` copies one."""
