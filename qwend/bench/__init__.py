"""Client-side benchmarks: seed cases and open-loop load against any OpenAI-compatible target.

Pure parts (``scenarios``, ``stats``, ``results``, ``compare``, ``render``) are tested
without sockets; ``wire`` and ``runner`` send the requests (aiohttp), ``store`` keeps
results on disk and ``target`` resolves lanes and roles through the control API.
"""
