"""The adaptive router: live state and snapshot (router), the aiohttp app (app, handlers), one
request's way through (exchange), lane slots and the queue (lanes, slots, admission), the upstream
pool and watchdog, proxying, recording and metrics.
"""
