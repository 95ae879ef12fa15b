"""ZyFlow: OpenSpec tasks.md files and a runtime task database, kept in step."""

__version__ = "0.1.0"
