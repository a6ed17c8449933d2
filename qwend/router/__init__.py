"""The adaptive router: live lane state and snapshot, the aiohttp app, handlers, exchange,
admission, proxy, recording and metrics.
"""
