"""Logging filters for the settings' LOGGING."""

from __future__ import annotations

import logging


class RefusalOnOneLine(logging.Filter):
    """A refused request (403) is an answer, not a crash: log one line naming what was
    refused and why, without the traceback Django attaches to ``PermissionDenied``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", None) == 403 and record.exc_info:
            reason = str(record.exc_info[1] or "").strip()
            if reason:
                record.msg = f"{record.msg} ({reason})"
            record.exc_info = None
            record.exc_text = None
        return True
