"""The one exception tree of sourceip (``clientip`` keeps its own, being stdlib-only).

::

    SourceIPError                   anything sourceip raises on purpose
    ├── InputError                  the user's input is wrong            -> exit 1
    │   ├── ManifestError           YAML/JSON that does not parse, or a document of the wrong shape
    │   ├── ValidationError         a field whose value is invalid (bad IP, port out of range, ...)
    │   └── RulesetParseError       an iptables-save / nft dump that cannot be read
    ├── LookupFailed                a named object (node, service, pod, example) does not exist -> 1
    ├── TraceError                  the tracer cannot follow a packet (e.g. unknown vantage point)
    ├── LabPreconditionError        the lab cannot run here (not root, tool missing) -> exit 3
    └── LabError                    the lab failed while building or probing        -> exit 1

Every error carries an optional location (``file``, ``line``, ``field``) and renders as
``file:line: field: message`` so that messages point at the thing to fix.
"""

from __future__ import annotations


class SourceIPError(Exception):
    """Base class; ``str()`` gives ``file:line: field: message`` with the parts that are known."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.field = field

    def located(
        self, *, file: str | None = None, line: int | None = None, field: str | None = None
    ) -> SourceIPError:
        """Fill in location parts that are still unknown; returns ``self`` for chaining."""
        if self.file is None:
            self.file = file
        if self.line is None:
            self.line = line
        if self.field is None:
            self.field = field
        return self

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = self.file + (f":{self.line}" if self.line is not None else "") + ": "
        elif self.line is not None:
            where = f"line {self.line}: "
        field = f"{self.field}: " if self.field else ""
        return f"{where}{field}{self.message}"


class InputError(SourceIPError):
    """The user's input is wrong."""


class ManifestError(InputError):
    """A file that does not parse as YAML/JSON, or a document of the wrong shape."""


class ValidationError(InputError):
    """A field whose value is invalid."""


class RulesetParseError(InputError):
    """An iptables-save or nft dump that cannot be read."""


class LookupFailed(SourceIPError):
    """A named object (node, service, pod, example) does not exist."""


class TraceError(SourceIPError):
    """The tracer cannot follow a packet."""


class LabPreconditionError(SourceIPError):
    """The lab cannot run on this machine (not root, a tool missing)."""

    exit_code = 3


class LabError(SourceIPError):
    """The lab failed while building or probing."""
