"""Ascend NPUs: the npu-smi model, parsers, lane attribution and rendering (pure), and the monitor
that runs npu-smi.
"""
