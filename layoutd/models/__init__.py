"""Pydantic models: host facts, VM spec, guest map and plan.

Every model is built on first use (`defer_build`, defaults by factory), and pydantic's plugin
scan of every installed package's metadata is skipped: start-up time is benchmarked.
"""

import os

os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
