"""CSRF protection: every console request that changes something carries the session's CSRF token.

Forms send it as the hidden field ``csrf_token``; htmx sends it as the ``X-CSRF-Token`` header (set once on the
``<body>`` of base.html with ``hx-headers``). A missing or wrong token is refused with 403 before the route runs.
The login form, which has no session yet, uses a double-submit token instead: a random value both in a
short-lived cookie and in the form (see :mod:`edgewise.cloud.console.pages.login`).
"""

from __future__ import annotations

import secrets

from fastapi import HTTPException, Request

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def submitted_csrf_token(request: Request) -> str:
    """The CSRF token a request carries: its header, else its form field; empty when it has none."""
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        value = (await request.form()).get(CSRF_FIELD)
        return value if isinstance(value, str) else ""
    return ""


def check_token(submitted: str, expected: str) -> None:
    """Refuse (403) unless ``submitted`` is ``expected``."""
    if not submitted or not secrets.compare_digest(submitted.encode(), expected.encode()):
        raise HTTPException(403, "The form's CSRF token is missing or wrong; reload the page and try again")
