"""Pydantic models: host facts, VM spec, guest map and plan."""
