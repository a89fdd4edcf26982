"""One module per CLI command: `add_arguments(parser)` and `run(args) -> int`.

Only the standard library is imported at module level; each `run` imports what it needs.
"""
