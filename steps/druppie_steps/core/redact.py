"""Secret redaction: every line a step prints, every error and every result passes through here."""

import re
import urllib.parse

MASK = "***"
# The whole userinfo of a URL is a secret: tokens come as the password (user:token@) and as the
# user name alone (https://<token>@github.com/...). ssh:// keeps a user-only userinfo: there it is
# the login (git@), the credential is the key. Greedy up to the last @ before the path, as URL
# parsers split, so an unencoded @ in a password does not leave its tail visible.
_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/?#\s]+)@")
_SSH_SCHEMES = ("ssh://", "git+ssh://", "ssh+git://")
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a secret value (a token or password) so it is masked wherever it would appear."""
    if value and len(value) >= 4:  # masking 1-3 characters would mangle ordinary text
        _secrets.add(value)


def register_url_secrets(url: str) -> None:
    """Register the user and password of a URL's userinfo, as written and percent-decoded."""
    try:
        parsed = urllib.parse.urlsplit(url.strip())
    except ValueError:
        return
    for part in (parsed.username, parsed.password):
        if part:
            register_secret(part)
            register_secret(urllib.parse.unquote(part))


def _mask_userinfo(match: re.Match[str]) -> str:
    if match["scheme"].lower() in _SSH_SCHEMES and ":" not in match["userinfo"]:
        return match[0]
    return f"{match['scheme']}{MASK}@"


def redact(text: str) -> str:
    text = _URL_USERINFO.sub(_mask_userinfo, text)
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
