"""Screens of qwen-tui."""
