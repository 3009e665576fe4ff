"""A logging filter that keeps secrets out of log lines.

The masking itself (registered secret values and a pattern backstop) is
masking.py's; it is applied to the formatted message (the template with its
arguments), to the exception text and to the stack text."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from streamer.observability.masking import SecretMasker


class Redactor(logging.Filter):
    """Replaces secrets with "***" in every record it sees (it never drops one).

    The record is rewritten in place (message rendered, arguments dropped,
    exception text cached), so every handler after this one sees it redacted."""

    def __init__(self, masker: SecretMasker | None = None) -> None:
        super().__init__()
        self.masker = masker or SecretMasker()
        self._exception_formatter = logging.Formatter()

    def add_secrets(self, values: Iterable[str]) -> None:
        self.masker.add(values)

    def filter(self, record: logging.LogRecord) -> bool:
        mask = self.masker.mask
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: let the handler report it as usual
            return True
        redacted = mask(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._exception_formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
        return True
