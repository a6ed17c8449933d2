"""Lane and daemon configuration: model, schema, drafts, checks, parsing and the check-config
report (pure), and loading from files.
"""
