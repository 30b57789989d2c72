"""Click tokens: the ``<token>`` in ``<base>/c/<token>``.

A token carries campaign, variant, part, placement position and the internal recipient id.
Those fields are packed into one 16-byte block and encrypted with AES (a single-block
permutation, so equal inputs give equal tokens and nothing about the recipient is readable),
then signed with itsdangerous over the whole ciphertext. Both keys are derived from the
configured secret keys, so rotating ``SECRET_KEYS`` rotates both: the newest key signs, every
key verifies (and the one that verified also decrypts).

Size: 22 characters of ciphertext, a dot, 22 of signature (HMAC-SHA256 cut to 128 bits) = 45
characters, so with a 30-character base the whole URL is 78 characters.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from itsdangerous import BadData, Signer
from itsdangerous.encoding import base64_decode, base64_encode
from itsdangerous.signer import HMACAlgorithm

from app.vocabulary import PARTS

if TYPE_CHECKING:
    from flask import Flask

_VERSION = 1
# version, campaign, variant, part, position, recipient: exactly one AES block
_LAYOUT = struct.Struct(">BIIBHI")
assert _LAYOUT.size == 16
# The largest link position a token can carry (16 bits): ingest refuses parts with more links.
MAX_POSITION = 2**16 - 1
_LAST_CHARS = frozenset("AQgw")  # base64 digits 0, 16, 32, 48: the low 4 bits are zero


class InvalidToken(Exception):
    """The token is not one we issued: tampered, truncated, extended or from another key."""


@dataclass(frozen=True, slots=True)
class ClickToken:
    campaign_id: int
    variant_id: int
    part: str
    position: int
    recipient_id: int


class _TruncatedHMAC(HMACAlgorithm):
    """HMAC-SHA256 cut to 128 bits: ample for a MAC and it keeps URLs short."""

    def __init__(self) -> None:
        super().__init__(hashlib.sha256)

    def get_signature(self, key: bytes, value: bytes) -> bytes:
        return hmac.new(key, value, hashlib.sha256).digest()[:16]


class _KeyedSigner(Signer):
    """A signer for one secret whose derived key is computed once, not per signature."""

    def __init__(self, secret: bytes, salt: bytes) -> None:
        super().__init__(secret, salt=salt, algorithm=_TruncatedHMAC(), key_derivation="hmac")
        self._derived = super().derive_key()

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        # This signer holds one key, which itsdangerous passes back explicitly on verify.
        if secret_key is None or secret_key == self.secret_keys[0]:
            return self._derived
        return super().derive_key(secret_key)


class TokenCodec:
    """The one wrapper around itsdangerous for click tokens (salt ``clickmap.click``)."""

    SALT = b"clickmap.click"

    def __init__(self, secret_keys: Sequence[str]) -> None:
        if not secret_keys:
            raise ValueError("at least one secret key is required")
        self._local = threading.local()
        # Newest key first, because that is the one almost every token was signed with.
        self._keys: list[tuple[_KeyedSigner, Cipher[Any]]] = []
        for secret in reversed(secret_keys):
            raw = secret.encode()
            aes_key = hmac.new(raw, self.SALT + b".aes", hashlib.sha256).digest()[:16]
            cipher = Cipher(algorithms.AES(aes_key), modes.ECB())  # noqa: S305 - one block
            self._keys.append((_KeyedSigner(raw, self.SALT), cipher))

    def encode_many(
        self,
        campaign_id: int,
        variant_id: int,
        part: str,
        positions: Sequence[int],
        recipient_id: int,
    ) -> list[str]:
        """Tokens for several placements of one recipient, in one pass of the cipher."""
        part_code = PARTS.index(part)
        blocks = b"".join(
            _LAYOUT.pack(_VERSION, campaign_id, variant_id, part_code, pos, recipient_id)
            for pos in positions
        )
        signer, cipher = self._keys[0]
        sealed = self._context("encryptors", cipher).update(blocks)
        return [
            signer.sign(base64_encode(sealed[i : i + 16])).decode("ascii")
            for i in range(0, len(sealed), 16)
        ]

    def encode(self, token: ClickToken) -> str:
        return self.encode_many(
            token.campaign_id,
            token.variant_id,
            token.part,
            [token.position],
            token.recipient_id,
        )[0]

    def _context(self, kind: str, cipher: Cipher[Any]) -> Any:
        """An encryptor or decryptor kept per thread and key: in ECB mode each whole block is
        processed on its own, so one context serves every token and saves building one per
        click (decrypting) or per recipient and part (encrypting), which costs more than
        the AES work itself."""
        contexts: dict[int, Any] = self._local.__dict__.setdefault(kind, {})
        context = contexts.get(id(cipher))
        if context is None:
            context = contexts[id(cipher)] = (
                cipher.encryptor() if kind == "encryptors" else cipher.decryptor()
            )
        return context

    def decode(self, token: str) -> ClickToken:
        """Verify and unpack a token, or raise ``InvalidToken``."""
        if len(token) != 45 or not token.isascii() or token[22] != ".":
            raise InvalidToken("malformed token")
        # 16 bytes take 22 base64 characters whose last one carries only 2 bits; the other
        # 4 must be zero, or several spellings of one token would all be accepted.
        if token[21] not in _LAST_CHARS or token[44] not in _LAST_CHARS:
            raise InvalidToken("malformed token")
        for signer, cipher in self._keys:
            try:
                payload = signer.unsign(token.encode("ascii"))
                sealed = base64_decode(payload)
            except BadData:
                continue
            if len(sealed) != 16:
                continue
            block = self._context("decryptors", cipher).update(sealed)
            version, campaign, variant, part_code, pos, recipient = _LAYOUT.unpack(block)
            if version != _VERSION or part_code >= len(PARTS):
                raise InvalidToken("unknown token layout")
            return ClickToken(campaign, variant, PARTS[part_code], pos, recipient)
        raise InvalidToken("bad signature")


class OpenCodec(TokenCodec):
    """The codec of open-pixel tokens (``<base>/o/<token>``): the click token's layout, with
    position 0, under a salt of its own, so a pixel's token never opens a link and a link's
    token never counts as an open."""

    SALT = b"clickmap.open"


def open_codec(app: Flask) -> OpenCodec:
    """The app's open-pixel codec, built once per process."""
    codec: OpenCodec | None = app.extensions.get("clickmap.open_codec")
    if codec is None:
        codec = app.extensions["clickmap.open_codec"] = OpenCodec(app.config["SECRET_KEYS"])
    return codec


def token_codec(app: Flask) -> TokenCodec:
    """The app's codec, built once per process so its key schedule and caches are shared."""
    codec: TokenCodec | None = app.extensions.get("clickmap.codec")
    if codec is None:
        codec = app.extensions["clickmap.codec"] = TokenCodec(app.config["SECRET_KEYS"])
    return codec


# -- message ids: the id a sender attaches to each personalized email --------------------------

MESSAGE_ID_PREFIX = "cm_"


@dataclass(frozen=True, slots=True)
class MessageId:
    campaign_id: int
    variant_id: int
    recipient_id: int


class _MessageTokens(TokenCodec):
    # A salt of its own derives other AES and signing keys: a click token is never a valid
    # message id, nor the reverse.
    SALT = b"clickmap.message"


class MessageIdCodec:
    """The opaque id of one personalized email: ``cm_`` and 45 characters.

    It names the campaign, variant and internal recipient, encrypted and signed exactly as a
    click token is (a salt of its own, ``clickmap.message``), so it reads as noise, holds no
    sender recipient id or address, and a forged or altered id fails ``decode``. Senders
    attach it to the message at their ESP, which posts it back with each delivery event.
    """

    def __init__(self, secret_keys: Sequence[str]) -> None:
        self._tokens = _MessageTokens(secret_keys)

    def encode(self, campaign_id: int, variant_id: int, recipient_id: int) -> str:
        token = self._tokens.encode(ClickToken(campaign_id, variant_id, PARTS[0], 0, recipient_id))
        return MESSAGE_ID_PREFIX + token

    def decode(self, text: str) -> MessageId:
        """The email an id names, or ``InvalidToken``."""
        if not isinstance(text, str) or not text.startswith(MESSAGE_ID_PREFIX):
            raise InvalidToken("not a Clickmap message id")
        found = self._tokens.decode(text[len(MESSAGE_ID_PREFIX) :])
        if found.part != PARTS[0] or found.position != 0:
            raise InvalidToken("unknown message id layout")
        return MessageId(found.campaign_id, found.variant_id, found.recipient_id)


def message_id_codec(app: Flask) -> MessageIdCodec:
    """The app's message id codec, built once per process."""
    codec: MessageIdCodec | None = app.extensions.get("clickmap.message_ids")
    if codec is None:
        codec = app.extensions["clickmap.message_ids"] = MessageIdCodec(app.config["SECRET_KEYS"])
    return codec
