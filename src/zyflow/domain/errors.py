"""Errors the domain and its adapters raise; each maps to one HTTP status and CLI exit code."""

from __future__ import annotations


class ZyflowError(Exception):
    """Base of every error a user can be shown as one line."""

    status = 400
    title = "Bad request"


class SpecError(ZyflowError):
    """A tasks.md (or project layout) that cannot be read as the grammar says."""

    status = 422
    title = "Unreadable specification file"


class InvalidInput(ZyflowError):
    status = 400
    title = "Invalid input"


class NotFound(ZyflowError):
    status = 404
    title = "Not found"


class ConcurrencyError(ZyflowError):
    """An expected version that is no longer current; nothing was written."""

    status = 409
    title = "Version conflict"


class PathOutsideProject(ZyflowError):
    status = 400
    title = "Path outside the project"


class Unavailable(ZyflowError):
    """The database could not take the write after bounded retries (it was dead-lettered)."""

    status = 503
    title = "Storage unavailable"
