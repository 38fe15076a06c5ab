"""Time-limited, unguessable links to stored reference images, for link-only providers.

Runflow and Runbase take reference images only as URLs (``image_urls``; seeds 002-004).
Slack files, playground uploads and CLI files have no public URL of their own, so
bananabot serves them itself at ``BANANABOT_PUBLIC_URL/media/<token>``. A token is the
media key signed with a secret and a timestamp (itsdangerous); it cannot be guessed or
forged, and it stops working ``ttl`` seconds after it was made. Nothing is stored per link,
so every process that shares the media directory and the secret can serve any link.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer

from bot.media.store import KEY_PATTERN

__all__ = ["LINK_PATH", "MediaLinks", "load_or_create_secret"]

LINK_PATH: Final = "/media/"
"""Path prefix links are served under; a token is one path segment after it."""

_SALT: Final = "bananabot.reference-link.v1"
_TOKEN: Final = re.compile(r"[A-Za-z0-9_.-]{20,400}")


def load_or_create_secret(path: Path) -> str:
    """The link-signing secret stored at ``path``; made (32 random bytes, mode 0600) if absent.

    Processes that share the media directory share this file, so a link made by a worker is
    served by whichever process the provider reaches.

    Raises:
        OSError: the file cannot be read or created.
    """
    try:
        return path.read_text("ascii").strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_text("ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secret)
    return secret


class MediaLinks:
    """Makes and checks reference links (implements :class:`bot.interfaces.ReferenceLinks`).

    Args:
        public_url: where this bot is reachable from the internet (``BANANABOT_PUBLIC_URL``),
            e.g. ``https://bot.example.com``; links are ``{public_url}/media/{token}``.
        secret: the signing secret (at least 16 characters).
        ttl: whole seconds a link works after it is made.
        clock: the time source, seconds since the epoch (tests move it).

    Raises:
        ValueError: a short secret or a non-positive ``ttl``.
    """

    def __init__(
        self,
        public_url: str,
        secret: str,
        ttl: int = 3600,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("the link secret must be at least 16 characters")
        if ttl <= 0:
            raise ValueError("ttl must be positive seconds")

        class _Signer(TimestampSigner):
            def get_timestamp(self) -> int:
                return int(clock())

        self._base = public_url.rstrip("/") + LINK_PATH
        self._serializer = URLSafeTimedSerializer(secret, salt=_SALT, signer=_Signer)
        self.ttl = ttl

    def link(self, media_key: str) -> str:
        """A URL that serves ``media_key``'s bytes for :attr:`ttl` seconds from now.

        Raises:
            ValueError: ``media_key`` is not a media store key.
        """
        if not KEY_PATTERN.fullmatch(media_key):
            raise ValueError("not a media key")
        return self._base + self._serializer.dumps(media_key)

    def resolve(self, token: str) -> str | None:
        """The media key a token names, or None if it is malformed, forged or expired."""
        if not _TOKEN.fullmatch(token):
            return None
        try:
            key = self._serializer.loads(token, max_age=self.ttl)
        except BadSignature:  # includes SignatureExpired
            return None
        return key if isinstance(key, str) and KEY_PATTERN.fullmatch(key) else None
