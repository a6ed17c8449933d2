"""qwend-sim: the built-in lane emulator (OpenAI-compatible server) and a fake npu-smi."""
