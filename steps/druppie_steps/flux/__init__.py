"""Flux: pure status decisions (status.py) kept apart from the code that talks to the API (watch.py)."""
