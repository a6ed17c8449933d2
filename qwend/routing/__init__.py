"""The pure router core: request classification, lane choice (policy), the learned lane
model (perf), sliding windows, the statistics snapshot, the breaker, the routable lane set and
the ``/v1/models`` parser.
"""
