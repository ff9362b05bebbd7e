"""Compatibility modules put on the PYTHONPATH of nodes that `car` starts."""
