"""Picsort Local core: settings, domain types, errors and the command line."""

__version__ = "0.1.0"
