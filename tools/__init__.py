"""Tools for the book and its authors: ``python -m tools.prose_check`` (numbers in prose)."""
