"""Talking to running VMs over QMP."""
