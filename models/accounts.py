"""Accounts and API tokens as the CLI and the panel change them (the argon2 side, creating an
account and checking a password, is backend/auth.py)."""

from __future__ import annotations

import peewee

from models.entities import ApiToken, User


class AccessError(ValueError):
    """The acting user may not do what was asked."""


def accounts_exist() -> bool:
    """Whether any account exists (the first run has none)."""
    return User.select().exists()


def all_users() -> list[User]:
    """Every account, by email."""
    return list(User.select().order_by(User.email))


def delete_user(actor: User, user_id: int) -> User | None:
    """Delete an account with its sessions, tokens and memberships (an administrator's act, never
    on their own account); the deleted user, or None if it was gone already."""
    current = _user(actor.get_id())
    if current is None or not current.is_admin or current.get_id() == user_id:
        raise AccessError("You cannot delete this account.")
    person = _user(user_id)
    if person is not None:
        person.delete_instance()  # its sessions, tokens and memberships cascade
    return person


def _user(user_id: int) -> User | None:
    try:
        return User.get_by_id(user_id)
    except peewee.DoesNotExist:
        return None


def issue_token(user: User, name: str = "") -> tuple[ApiToken, str]:
    """A new API token for ``user``: the record and the token text (shown once)."""
    name = name.strip()
    if len(name) > 100:
        raise AccessError("the name may have at most 100 characters")
    return ApiToken.issue(user, name)


def active_tokens(user: User) -> list[ApiToken]:
    """The user's unrevoked tokens, newest first."""
    return list(ApiToken.select()
                .where((ApiToken.user == user) & ApiToken.revoked_at.is_null())
                .order_by(ApiToken.created_at.desc(), ApiToken.prefix))


def revoke_token(user: User, token_hash: str) -> ApiToken | None:
    """Revoke one of ``user``'s own tokens; the token if it was live, else None."""
    current = ApiToken.get_or_none((ApiToken.token_hash == token_hash) & (ApiToken.user == user))
    if current is None or current.revoked_at is not None:
        return None
    current.revoke()
    return current
