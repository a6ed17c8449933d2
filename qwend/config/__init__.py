"""Lane and daemon configuration: model, schema, drafts, checks, parsing (pure) and loading from
files.
"""
