"""Keep provider keys out of logs, exceptions and stored error messages.

The gateway registers every key it decrypts; ``scrub`` removes them (and anything shaped like a
bearer token) from text, and ``RedactSecretsFilter`` does the same to every log record.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback

_lock = threading.Lock()
_secrets: frozenset[str] = frozenset()
REDACTED = "[redacted]"
# Shapes of credentials that providers echo back in errors (OpenAI-style keys, bearer headers).
_PATTERNS = re.compile(r"(?:sk|pk|rk)-[A-Za-z0-9_\-*]{8,}|(?i:bearer)\s+[A-Za-z0-9._\-~+/=]{8,}")


def register_secrets(secrets: set[str]) -> None:
    global _secrets
    with _lock:
        _secrets = _secrets | frozenset(s for s in secrets if len(s) >= 4)


def scrub(text: str) -> str:
    if not text:
        return text
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return _PATTERNS.sub(REDACTED, text)


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the formatter to report
            return True
        record.msg = scrub(message)
        record.args = None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = scrub("".join(traceback.format_exception(*record.exc_info)).rstrip())
            record.exc_info = None
        return True
