"""Formats: each renders results to a string and never computes them."""
