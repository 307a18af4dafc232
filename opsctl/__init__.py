"""opsctl: the ops toolkit for the Clara bot."""

__version__ = "0.1.0"
