"""Accounts and credentials: argon2id passwords, signed session cookies, bearer tokens."""

from __future__ import annotations

import asyncio
import json
import re
import time
from base64 import b64decode
from collections import deque

import itsdangerous
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from models.entities import ApiToken, Session, User

SESSION_COOKIE = "session"  # NiceGUI's (Starlette's) signed session cookie
SESSION_LIFETIME = 14 * 24 * 3600.0
MIN_PASSWORD = 8

_hasher = PasswordHasher()  # argon2id with the library's recommended parameters
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{2,}$")


class AccountError(ValueError):
    """An account cannot be created or changed as asked."""


def hash_password(password: str) -> str:
    """The argon2id hash of a password."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches; constant work whatever the outcome."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# A real hash to verify against when the account does not exist, so timing reveals nothing.
_DUMMY_HASH = hash_password("pulse-no-such-user")


def normalize_email(email: str) -> str:
    """A lower-cased, checked email address; AccountError if it is not one."""
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise AccountError(f"{email!r} is not a valid email address")
    return email


def check_password(password: str) -> None:
    """AccountError unless the password is long enough to keep."""
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > 1024:
        raise AccountError("the password is longer than 1024 characters")


def create_user(email: str, password: str, *, is_admin: bool = False) -> User:
    """Create an account (blocking: argon2 hashing); AccountError for bad input or a duplicate."""
    email = normalize_email(email)
    check_password(password)
    if User.by_email(email) is not None:
        raise AccountError(f"a user with the email {email} already exists")
    return User.create(email=email, password_hash=hash_password(password), is_admin=is_admin)


def check_credentials(email: str, password: str) -> User | None:
    """The user whose email and password match, or None (blocking: run it off the loop)."""
    user = User.by_email(email)
    if user is None:
        verify_password(_DUMMY_HASH, password)
        return None
    return user if verify_password(user.password_hash, password) else None


async def check_credentials_async(email: str, password: str) -> User | None:
    """``check_credentials`` in a worker thread, so the event loop never waits on argon2."""
    return await asyncio.get_running_loop().run_in_executor(
        None, check_credentials, email, password)


def browser_id_from_cookie(secret: str, value: str | None) -> str | None:
    """The browser id inside the panel's signed session cookie, if the signature holds."""
    if not value or len(value) > 4096:
        return None
    try:
        raw = itsdangerous.TimestampSigner(secret).unsign(value.encode(),
                                                          max_age=int(SESSION_LIFETIME))
        data = json.loads(b64decode(raw))
    except (itsdangerous.BadSignature, ValueError, TypeError):
        return None
    browser_id = data.get("id") if isinstance(data, dict) else None
    return browser_id if isinstance(browser_id, str) else None


def user_from_cookie(secret: str, value: str | None) -> User | None:
    """The signed-in user of the panel's session cookie value, or None."""
    browser_id = browser_id_from_cookie(secret, value)
    return Session.user_for(browser_id) if browser_id else None


class LoginThrottle:
    """Failed sign-ins per account and per IP: after ``limit`` within ``period`` seconds, wait."""

    def __init__(self, limit: int = 5, period: float = 900.0) -> None:
        self.limit = limit
        self.period = period
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(key, deque())
        while failures and failures[0] <= now - self.period:
            failures.popleft()
        return failures

    def retry_after(self, email: str, ip: str, now: float | None = None) -> float:
        """0 if a sign-in may be tried now, else the seconds to wait."""
        if self.limit <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        waits = [0.0]
        for key in (f"account:{email.strip().lower()}", f"ip:{ip}"):
            failures = self._recent(key, now)
            if len(failures) >= self.limit:
                waits.append(failures[0] + self.period - now)
        return max(waits)

    def failed(self, email: str, ip: str, now: float | None = None) -> None:
        """Count one failed sign-in."""
        now = time.monotonic() if now is None else now
        if len(self._failures) > 100_000:
            self._failures.clear()
        for key in (f"account:{email.strip().lower()}", f"ip:{ip}"):
            self._recent(key, now).append(now)

    def succeeded(self, email: str) -> None:
        """A successful sign-in clears the account's failures (not the IP's)."""
        self._failures.pop(f"account:{email.strip().lower()}", None)


def user_from_authorization(header: str | None) -> User | None:
    """The user of an ``Authorization: Bearer <token>`` header, or None."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip() or len(token) > 256:
        return None
    return ApiToken.authenticate(token.strip())
