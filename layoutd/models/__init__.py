"""The models: host facts, VM spec, guest map and plan, as records (layoutd/record.py).

Input is checked by layoutd/models/validate.py; pydantic builds their reference view (the tests'
oracle and the published JSON schemas, layoutd/models/reference.py) and is never imported by a
command.
"""
