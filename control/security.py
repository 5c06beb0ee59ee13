"""Password hashing, JWTs, hashed one-time secrets and encryption of secrets at rest."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from control.config import Settings
from control.errors import Unauthenticated

JWT_ALGORITHM = "HS256"
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256

_password_hasher = PasswordHasher()
# Verified against when the email is unknown, so a miss costs as long as a wrong password.
_DUMMY_HASH = _password_hasher.hash("voxline-timing-equaliser")


def check_password_policy(password: str) -> str:
    """Return the password if it meets the minimum policy; raise a ValueError saying why not."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"password must be at most {MAX_PASSWORD_LENGTH} characters")
    if password.isdigit() or password.isalpha() or len(set(password)) < 4:
        raise ValueError("password must mix letters with digits or symbols")
    return password


def hash_password(password: str) -> str:
    return _password_hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _password_hasher.verify(password_hash or _DUMMY_HASH, password) and bool(
            password_hash
        )
    except (VerificationError, InvalidHashError):
        return False


def new_secret(prefix: str = "", nbytes: int = 32) -> str:
    return prefix + secrets.token_urlsafe(nbytes)


def hash_secret(secret: str) -> str:
    """SHA-256 of a high-entropy secret (API keys, reset tokens); safe to index and compare."""
    return hashlib.sha256(secret.encode()).hexdigest()


def constant_time_equals(left: str, right: str) -> bool:
    return hmac.compare_digest(left.encode(), right.encode())


def utcnow() -> datetime:
    return datetime.now(UTC)


def encode_token(settings: Settings, claims: dict[str, Any], ttl_seconds: int) -> str:
    now = utcnow()
    payload = {**claims, "iat": now, "exp": now + timedelta(seconds=ttl_seconds)}
    return jwt.encode(payload, settings.jwt_secret, algorithm=JWT_ALGORITHM)


def decode_token(settings: Settings, token: str, expected_type: str) -> dict[str, Any]:
    """Decode and verify a JWT of the given type, or raise Unauthenticated."""
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=[JWT_ALGORITHM],
            options={"require": ["exp", "iat", "sub", "typ"]},
        )
    except jwt.ExpiredSignatureError as error:
        raise Unauthenticated("TOKEN_EXPIRED", "The token has expired; log in again.") from error
    except jwt.PyJWTError as error:
        raise Unauthenticated("INVALID_TOKEN", "The token is invalid.") from error
    if claims.get("typ") != expected_type:
        raise Unauthenticated("INVALID_TOKEN", f"Expected a {expected_type} token.")
    try:
        uuid.UUID(str(claims["sub"]))
    except ValueError as error:
        raise Unauthenticated("INVALID_TOKEN", "The token is invalid.") from error
    return claims


class SecretUnreadableError(ValueError):
    """A stored secret that none of the configured encryption keys decrypts."""


def _fernet(settings: Settings) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in settings.fernet_keys])


def encrypt_secret(settings: Settings, plaintext: str) -> str:
    """Encrypt with the newest key (the first of `VOXLINE_ENCRYPTION_KEYS`)."""
    return _fernet(settings).encrypt(plaintext.encode()).decode()


def decrypt_secret(settings: Settings, ciphertext: str) -> str:
    """Decrypt with whichever configured key wrote the secret.

    Raises:
        SecretUnreadableError: no configured key decrypts it (the key that wrote it is gone).
    """
    try:
        return _fernet(settings).decrypt(ciphertext.encode()).decode()
    except (InvalidToken, TypeError, ValueError) as error:
        raise SecretUnreadableError(
            "a stored secret cannot be decrypted with the configured encryption keys "
            "(VOXLINE_ENCRYPTION_KEYS); set it again"
        ) from error


def secret_readable(settings: Settings, ciphertext: str) -> bool:
    try:
        decrypt_secret(settings, ciphertext)
    except SecretUnreadableError:
        return False
    return True


def reencrypt_secret(settings: Settings, ciphertext: str) -> str:
    """The secret encrypted with the newest key (`voxline rotate-keys`).

    Raises:
        SecretUnreadableError: no configured key decrypts it.
    """
    try:
        return _fernet(settings).rotate(ciphertext.encode()).decode()
    except (InvalidToken, TypeError, ValueError) as error:
        raise SecretUnreadableError(
            "a stored secret cannot be decrypted with the configured encryption keys"
        ) from error


def mask_secret(secret: str) -> str:
    """What the API shows of a stored secret: never more than its last four characters."""
    return "****" + secret[-4:] if len(secret) > 8 else "****"
