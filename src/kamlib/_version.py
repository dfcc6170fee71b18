"""Single source of the kamlib version (read by hatchling and at runtime)."""

__version__ = "0.1.0"
