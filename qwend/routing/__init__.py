"""The pure router core: request classification, routing policy, lane performance model, windows,
breaker.
"""
