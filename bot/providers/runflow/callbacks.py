"""Runflow callback signatures: ``Runflow-Signature`` is hex HMAC-SHA256 of the raw body.

Source: seeds/002_* ("``Runflow-Signature`` is sent if a signing secret is configured") and
shared/reference/provider-apis.md §2.5 (64 lowercase hex characters, no timestamp, no
``sha256=`` prefix, computed over the raw request bytes with the ``plain_secret`` as key).
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["SIGNATURE_HEADER", "sign", "verify_signature"]

SIGNATURE_HEADER = "Runflow-Signature"


def sign(secret: str, raw_body: bytes) -> str:
    """The signature Runflow sends for ``raw_body``: ``hex(HMAC-SHA256(secret, raw_body))``."""
    return hmac.new(secret.encode("utf-8"), raw_body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, raw_body: bytes, header: str | None) -> bool:
    """Whether ``header`` is Runflow's signature of ``raw_body`` under ``secret``.

    Compare over the bytes as received, never re-serialized JSON. The comparison is
    constant-time; a missing or malformed header (not 64 hex characters) is False. During
    secret rotation call it once per active secret.

    Args:
        secret: the callback signing secret (``plain_secret``, e.g. ``whsec_...``).
        raw_body: the request body exactly as received.
        header: the ``Runflow-Signature`` header value, or None if absent.
    """
    if not secret or header is None:
        return False
    candidate = header.strip().lower()
    if len(candidate) != 64:
        return False
    return hmac.compare_digest(sign(secret, raw_body), candidate)
