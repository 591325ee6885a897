"""Exceptions of the export package: each message names the file, component, field or value at fault."""

from __future__ import annotations


class ExportError(Exception):
    """An export that cannot proceed (bad source, bad option, existing output, ...)."""


class SourceError(ExportError):
    """The source pipeline cannot be found, read, or is of a kind we do not export."""


class SchedulerConversionError(ExportError, ValueError):
    """A scheduler config cannot be turned into one of edge_sched's schedulers."""


class ValidationError(ExportError):
    """An exported graph does not reproduce its torch component within the tolerance."""

    def __init__(self, message: str, results: dict | None = None):
        super().__init__(message)
        self.results = results or {}
