"""Frameworks' functions as checkable functions (PyTorch; optional dependencies)."""
