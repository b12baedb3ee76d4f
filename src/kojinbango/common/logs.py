"""Logging that never writes an identifier in clear.

Code never logs 個人番号 or 住民票コード on purpose; this filter is the second line of defence: any
run of 11 or 12 digits (or their full-width forms) in a log record is masked to its last 4 digits.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

_DIGITS = re.compile(r"(?<![0-9０-９])[0-9０-９]{11,12}(?![0-9０-９])")


def redact(text: str) -> str:
    return _DIGITS.sub(lambda m: "*" * (len(m.group()) - 4) + m.group()[-4:], text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        # A traceback repeats the exception's message (a database error names its parameters): the
        # formatter writes ``exc_text`` when it is set, so it is set here, redacted.
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(_TRACEBACKS.formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_TRACEBACKS = logging.Formatter()


class _LogFile(logging.FileHandler):
    """A log file made (with its folder) by the first record, not before: a command refused before
    it does anything leaves nothing behind in a data directory it was given."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, encoding="utf-8", delay=True)

    def _open(self) -> Any:
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()


def configure(log_file: Path | None = None, level: int = logging.INFO) -> None:
    """Root logging to ``log_file`` (and stderr for warnings), every handler redacting."""
    root = logging.getLogger()
    root.setLevel(level)
    for h in list(root.handlers):
        root.removeHandler(h)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers: list[logging.Handler] = []
    if log_file is not None:
        fh = _LogFile(log_file)
        fh.setLevel(level)
        handlers.append(fh)
    err = logging.StreamHandler()
    err.setLevel(logging.WARNING)
    handlers.append(err)
    for h in handlers:
        h.setFormatter(fmt)
        h.addFilter(RedactingFilter())
        root.addHandler(h)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "httpx", "httpcore"):
        lg = logging.getLogger(name)
        lg.handlers = []
        lg.propagate = True
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
