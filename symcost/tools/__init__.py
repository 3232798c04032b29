"""Maintenance commands run with ``python -m symcost.tools.<name>``."""
