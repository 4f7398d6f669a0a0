"""The effzoo version: one source, read by pyproject (dynamic version) and written into every file we make."""
__version__ = "0.1.0"
