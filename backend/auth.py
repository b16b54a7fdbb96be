"""Accounts and credentials: argon2id passwords, signed session cookies, bearer tokens."""

from __future__ import annotations

import asyncio
import re

import tornado.web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from models.entities import ApiToken, Session, User

SESSION_COOKIE = "pulse_session"
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


def session_cookie_value(secret: str, token: str) -> str:
    """The signed cookie value that carries a session token."""
    return tornado.web.create_signed_value(secret, SESSION_COOKIE, token).decode()


def session_token_from_cookie(secret: str, value: str | None) -> str | None:
    """The session token inside a signed cookie value, if the signature holds."""
    if not value:
        return None
    raw = tornado.web.decode_signed_value(
        secret, SESSION_COOKIE, value, max_age_days=SESSION_LIFETIME / 86400)
    return raw.decode() if raw else None


def user_from_cookie(secret: str, value: str | None) -> User | None:
    """The signed-in user of a session cookie value, or None."""
    token = session_token_from_cookie(secret, value)
    return Session.user_for(token) if token else None


def user_from_authorization(header: str | None) -> User | None:
    """The user of an ``Authorization: Bearer <token>`` header, or None."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip() or len(token) > 256:
        return None
    return ApiToken.authenticate(token.strip())
