"""Promotion of a candidate lane: the plan (pure), its run against the supervisor, the promoter and
the persisted state.
"""
