"""Errors of the template language."""

from __future__ import annotations


class TemplateError(Exception):
    """A template could not be loaded, or a request could not be processed by it.

    ``file``, ``processor`` and ``field`` name where (any may be empty); the message says why.
    Agents turn it into their protocol's error reply (e.g. Diameter 5005 for a missing AVP).
    """

    def __init__(
        self,
        reason: str,
        *,
        file: str = "",
        processor: str = "",
        field: str = "",
        missing: str = "",
    ) -> None:
        self.reason = reason
        self.missing = missing  # the path of a missing mandatory value, e.g. "*req.Session-Id"
        self.file = file
        self.processor = processor
        self.field = field
        super().__init__(self._text())

    def _text(self) -> str:
        where = []
        if self.file:
            where.append(f"file {self.file}")
        if self.processor:
            where.append(f"processor {self.processor!r}")
        if self.field:
            where.append(f"field {self.field!r}")
        return f"{', '.join(where)}: {self.reason}" if where else self.reason

    def located(self, *, file: str = "", processor: str = "", field: str = "") -> TemplateError:
        """The same error with missing location parts filled in."""
        return TemplateError(
            self.reason,
            file=self.file or file,
            processor=self.processor or processor,
            field=self.field or field,
            missing=self.missing,
        )


class NotFoundError(LookupError):
    """A referenced path has no value in the request (internal: a non-mandatory field is
    then skipped, as CGRateS does with ``NOT_FOUND``)."""
