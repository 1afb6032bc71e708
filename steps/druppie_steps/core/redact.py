"""Secret redaction: every line a step prints, every error and every result passes through here."""

import re

MASK = "***"
# user:password@ in a URL; the password part is always a secret, whatever it is.
_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^/@:\s]*):(?P<secret>[^/@\s]*)@")
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a secret value (a token or password) so it is masked wherever it would appear."""
    if value and len(value) >= 4:  # masking 1-3 characters would mangle ordinary text
        _secrets.add(value)


def redact(text: str) -> str:
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
