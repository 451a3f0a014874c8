"""Console accounts: argon2id password hashes (argon2-cffi) and the roles' rights."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from pipeline.console.store import ROLES, Store

_hasher = PasswordHasher()
MIN_PASSWORD = 10

#: what each role may do; a role has the rights of the roles before it
RIGHTS = {
    "viewer": {"view"},
    "reviewer": {"view", "decide"},
    "lead": {"view", "decide", "appeal", "audit"},
}


def add_user(store: Store, username: str, password: str, role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"a password needs at least {MIN_PASSWORD} characters")
    store.put_user(username, _hasher.hash(password), role)


def check_login(store: Store, username: str, password: str) -> dict[str, str] | None:
    """The user if the password is theirs, else None (the same answer for an unknown name)."""
    user = store.user(username)
    if user is None:
        _hasher.hash(password)  # as slow as a real check, so timing does not tell which names exist
        return None
    try:
        _hasher.verify(user["password_hash"], password)
    except (VerificationError, InvalidHashError):
        return None
    if _hasher.check_needs_rehash(user["password_hash"]):
        store.put_user(username, _hasher.hash(password), user["role"])
    return {"username": username, "role": user["role"]}


def may(role: str, right: str) -> bool:
    return right in RIGHTS.get(role, set())
