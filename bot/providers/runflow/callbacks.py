"""Runflow run callbacks: ``Runflow-Signature`` is hex HMAC-SHA256 of the raw body.

Source: seeds/002_* ("``Runflow-Signature`` is sent if a signing secret is configured") and
shared/reference/provider-apis.md §2.5 (64 lowercase hex characters, no timestamp, no
``sha256=`` prefix, computed over the raw request bytes with the ``plain_secret`` as key).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Mapping

from pydantic import ValidationError

from bot.providers.runflow.wire import CallbackEvent

__all__ = ["CALLBACK_PATH", "SIGNATURE_HEADER", "CallbackReceiver", "sign", "verify_signature"]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Runflow-Signature"
CALLBACK_PATH = "/callbacks/runflow"
"""Where bananabot takes Runflow's callbacks: ``BANANABOT_PUBLIC_URL`` + this."""


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


class CallbackReceiver:
    """Takes Runflow's run callbacks (``POST BANANABOT_PUBLIC_URL/callbacks/runflow``).

    A callback is a hint to poll now, never a result: the run is read again from the
    authenticated API, so a forged or replayed callback can cost one extra poll and
    nothing else. With a signing secret (``RUNFLOW_CALLBACK_SECRET``) a callback must carry
    its valid ``Runflow-Signature``; without one Runflow sends none and every well-formed
    callback is taken as a hint.

    Args:
        notify: told the run id of each accepted callback
            (:meth:`bot.providers.runflow.RunflowProvider.notify`).
        secret: the callback signing secret, or None.
    """

    def __init__(self, notify: Callable[[str], bool], secret: str | None) -> None:
        self._notify = notify
        self._secret = secret

    def receive(self, raw_body: bytes, headers: Mapping[str, str]) -> int:
        """Check one callback and pass its run id on; returns the HTTP status to answer.

        Returns:
            200 accepted (also for a run this process is not polling: Runflow should not
            retry it); 401 a missing or wrong signature where a secret is set; 400 a body
            that is not a callback envelope (``{"event", "run_id", "status", ...}``).
        """
        if self._secret is not None and not verify_signature(
            self._secret, raw_body, headers.get(SIGNATURE_HEADER)
        ):
            log.warning(
                "runflow callback with a bad signature refused",
                extra={"request_id": headers.get("Runflow-Request-Id", "")},
            )
            return 401
        try:
            event = CallbackEvent.model_validate_json(raw_body)
        except ValidationError:
            return 400
        polling = self._notify(event.run_id)
        log.info(
            "runflow callback",
            extra={"run_id": event.run_id, "event": event.event, "polling": polling},
        )
        return 200
