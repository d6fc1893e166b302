"""Who may change the bank, and which files it may read: the server's admin surface.

PUT and DELETE /v1/prompts need `Authorization: Bearer <token>` when a token is set; a
server listening beyond loopback must have one (or be started with --insecure_admin). A
`{"path": ...}` PUT reads only files inside the allowed prompt directories (the bank and
any --prompt_dir); anything else is one 403, whether it exists or not.
"""

from __future__ import annotations

import hmac
import ipaddress
import os

ADMIN_TOKEN_ENV = "JAXPROMPT_ADMIN_TOKEN"


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and 'localhost'; '' and 0.0.0.0 listen everywhere."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def check_exposure(host: str, token: str | None, insecure: bool) -> None:
    """Refuses to expose an unauthenticated admin surface beyond loopback."""
    if token or insecure or is_loopback(host):
        return
    raise ValueError(
        f"--host {host} listens beyond loopback, so PUT/DELETE /v1/prompts need "
        f"a token: --admin_token TOKEN or ${ADMIN_TOKEN_ENV} (or "
        "--insecure_admin to let anyone who reaches the port change the bank)."
    )


def authorized(header: str | None, token: str | None) -> bool:
    """Whether an Authorization header carries the token (constant-time compare)."""
    if not token:
        return True
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


def confined(path: str, roots) -> str | None:
    """The real path of `path` if it lies inside one of `roots` (links resolved), else None."""
    real = os.path.realpath(path)
    for root in roots:
        root = os.path.realpath(root)
        if os.path.commonpath([real, root]) == root:
            return real
    return None


__all__ = ["ADMIN_TOKEN_ENV", "authorized", "check_exposure", "confined", "is_loopback"]
