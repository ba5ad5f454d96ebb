"""Credentials out of text: what a bug report must never carry. Pure.

Applied to everything a report writes (specs, status, Events, Deployments, logs). It replaces the
secret part and keeps the shape, so a reader still sees that a DSN named a user and a host:

- a URL's password: `postgresql://app:s3cret@db:5432/x` -> `postgresql://app:***@db:5432/x`;
- `key=value` and `key: value` pairs whose key names a secret (password, passwd, secret, token,
  sasl.password, sasl.jaas.config, and any key ending in one of those);
- a JSON member with such a key: `"password": "s3cret"` -> `"password": "***"`.
"""

from __future__ import annotations

import re
from typing import Final

MASK: Final = "***"
# A pattern of key names, not a password.
_SECRET_KEY: Final = r"[\w.\-]*(?:password|passwd|pwd|secret|token|jaas\.config|credentials?)"  # noqa: S105
# scheme://user:password@host: the password runs to the last @ before the host part.
_URL_PASSWORD: Final = re.compile(r"(?P<head>[a-zA-Z][\w+.\-]*://[^\s:/@\"']*:)[^\s@\"']*(?=@)")
_JSON_MEMBER: Final = re.compile(
    rf'(?P<head>"{_SECRET_KEY}"\s*:\s*")(?:[^"\\]|\\.)*(?=")', re.IGNORECASE
)
_PAIR: Final = re.compile(
    rf"(?P<head>\b{_SECRET_KEY}\s*[=:]\s*)"
    r"(?:(?P<quote>['\"])(?:(?!(?P=quote)).)*(?P=quote)|[^\s,;&'\"]+)",
    re.IGNORECASE,
)


def _masked_pair(match: re.Match[str]) -> str:
    quote = match["quote"] or ""
    return f"{match['head']}{quote}{MASK}{quote}"


def redact(text: str) -> str:
    text = _URL_PASSWORD.sub(rf"\g<head>{MASK}", text)
    text = _JSON_MEMBER.sub(rf"\g<head>{MASK}", text)
    return _PAIR.sub(_masked_pair, text)
