"""Redaction of reports that leave the machine (pasted into issues, uploaded by CI).

By default every output format hides:
- values of environment variables whose names look like credentials (tokens, keys,
  passwords, secrets), wherever those values appear;
- passwords in URLs (``https://user:pass@host`` -> ``https://<redacted>@host``);
- well-known token shapes (Hugging Face, GitHub, AWS access keys, Slack, OpenAI-style);
- the user's home directory (-> ``~``), user name (-> ``<user>``) and host name (-> ``<host>``);
- GPU and MIG UUIDs.

Redaction is a pure text transform applied to every string of the report's data,
so the redacted JSON is still a valid report that ``envdoctor check --from`` reads.
"""
from __future__ import annotations

import getpass
import os
import re
import socket
from dataclasses import dataclass, field
from typing import Any, List, Mapping, Optional, Pattern, Tuple

_SECRET_NAME = re.compile(
    r"(TOKEN|SECRET|PASSW(OR)?D|PASSWD|PWD_|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|_KEY$|^KEY_|CREDENTIAL|AUTH|COOKIE|SESSION)",
    re.IGNORECASE,
)
# Names that match the pattern above but are not secrets (their values are useful).
_NOT_SECRET_NAMES = {"PWD", "OLDPWD", "SSH_AUTH_SOCK", "XAUTHORITY", "KEYTIMEOUT"}

_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]{0,30}://)(?P<userinfo>[^/\s@:]{1,256}(:[^/\s@]{0,256})?)@")
_TOKEN_SHAPES: Tuple[Pattern[str], ...] = (
    re.compile(r"\bhf_[A-Za-z0-9]{20,}\b"),
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{40,}\b"),
    re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b"),
    re.compile(r"\bsk-[A-Za-z0-9_-]{20,}\b"),
    re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}\b"),
)
_GPU_UUID = re.compile(r"\b(GPU|MIG)-[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\b")
_MIN_SECRET_LEN = 4  # shorter values ("1", "yes") would redact ordinary text
# Account names that identify nobody; replacing them would only mangle text ("root" of a toolkit).
_IMPERSONAL_USERS = {"root"}


def looks_secret(name: str) -> bool:
    return name not in _NOT_SECRET_NAMES and bool(_SECRET_NAME.search(name))


@dataclass
class Redactor:
    """Replaces personal and secret strings. Build one with :meth:`from_environment`."""

    secrets: List[Tuple[str, str]] = field(default_factory=list)  # (value, NAME)
    home: Optional[str] = None
    user: Optional[str] = None
    host: Optional[str] = None
    enabled: bool = True

    @classmethod
    def from_environment(cls, env: Optional[Mapping[str, str]] = None, enabled: bool = True) -> "Redactor":
        env = dict(os.environ if env is None else env)
        secrets = sorted(
            ((value, name) for name, value in env.items() if looks_secret(name) and len(value) >= _MIN_SECRET_LEN),
            key=lambda item: -len(item[0]),  # longest first so a value inside another is not half-replaced
        )
        home = env.get("HOME") or os.path.expanduser("~")
        user = env.get("USER") or env.get("LOGNAME") or _safe(getpass.getuser)
        host = _safe(socket.gethostname)
        return cls(secrets=secrets, home=_usable_home(home), user=user or None, host=host or None, enabled=enabled)

    def text(self, value: str) -> str:
        if not self.enabled or not value:
            return value
        for secret, name in self.secrets:
            if secret in value:
                value = value.replace(secret, f"<redacted:{name}>")
        value = _URL_USERINFO.sub(lambda m: m.group("scheme") + "<redacted>@", value)
        for shape in _TOKEN_SHAPES:
            value = shape.sub("<redacted:token>", value)
        value = _GPU_UUID.sub(lambda m: f"{m.group(1)}-<redacted>", value)
        if self.home:
            value = re.sub(re.escape(self.home) + r"(?=/|\b|$)", "~", value)
        if self.user and len(self.user) >= 2 and self.user not in _IMPERSONAL_USERS:
            value = re.sub(r"(?<![A-Za-z0-9_.-])" + re.escape(self.user) + r"(?![A-Za-z0-9_-])", "<user>", value)
        if self.host and len(self.host) >= 2:
            value = re.sub(r"(?<![A-Za-z0-9_.-])" + re.escape(self.host) + r"(?![A-Za-z0-9_-])", "<host>", value)
        return value

    def data(self, value: Any) -> Any:
        """Redact every string value of a JSON-like structure. Keys are the schema
        (field names, variable names) and are kept, so a redacted report still loads."""
        if not self.enabled:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.data(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.data(v) for v in value)
        if isinstance(value, dict):
            return {k: self.data(v) for k, v in value.items()}
        return value


def _safe(fn) -> str:
    try:
        return fn() or ""
    except Exception:
        return ""


def _usable_home(home: str) -> Optional[str]:
    home = (home or "").rstrip("/")
    # "/" or an empty home would turn every path into "~..."
    return home if home and home != "/" else None
