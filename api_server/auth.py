"""API keys: where the server's keys come from, and the constant-time check of a request's key."""

from __future__ import annotations

import hmac
import os
from pathlib import Path

from api_server.problems import Problem

HEADER = "X-API-Key"
ENV = "TRADE_RECON_SERVER_API_KEYS"


class KeyConfigError(ValueError):
    """No usable server keys: the server refuses to start rather than serve unauthenticated."""


def _split(text: str) -> list[str]:
    keys = []
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        keys += [k.strip() for k in line.split(",") if k.strip()]
    return keys


def load_keys(keys_file: Path | None = None, environ: dict[str, str] | None = None) -> tuple[bytes, ...]:
    """Keys from `keys_file` (one per line or comma-separated, `#` comments) or else from the
    environment variable TRADE_RECON_SERVER_API_KEYS (comma-separated)."""
    environ = os.environ if environ is None else environ
    if keys_file is not None:
        try:
            keys = _split(Path(keys_file).read_text())
        except OSError as e:
            raise KeyConfigError(f"cannot read API keys file {keys_file}: {e.strerror}") from None
        where = f"API keys file {keys_file}"
    else:
        keys = _split(environ.get(ENV, "").replace(",", "\n"))
        where = f"environment variable {ENV}"
    if not keys:
        raise KeyConfigError(f"no API keys in {where}; the server does not serve without keys")
    return tuple(k.encode() for k in keys)


class ApiKeys:
    def __init__(self, keys: tuple[bytes, ...] | list[str]):
        self._keys = tuple(k.encode() if isinstance(k, str) else k for k in keys)
        if not self._keys:
            raise KeyConfigError("at least one API key is required")

    def check(self, presented: str | None) -> None:
        """401 when no key was sent, 403 when it is not a server key; the same answer for any
        wrong key, and every key is compared in full so timing tells nothing either."""
        if not presented:
            raise Problem(401, f"send your API key in the {HEADER} header", slug="unauthenticated",
                          headers={"WWW-Authenticate": f'ApiKey header="{HEADER}"'})
        given = presented.encode("utf-8", "surrogateescape")
        ok = False
        for key in self._keys:
            ok |= hmac.compare_digest(given, key)
        if not ok:
            raise Problem(403, "the API key is not valid", slug="forbidden")
