import base64
import hashlib
import hmac
import re

import pytest

from app.tokens import ClickToken, InvalidToken, MessageIdCodec, TokenCodec

TOKEN = ClickToken(campaign_id=7, variant_id=12, part="html", position=3, recipient_id=424242)


def test_round_trip_keeps_every_field() -> None:
    codec = TokenCodec(["k" * 40])
    assert codec.decode(codec.encode(TOKEN)) == TOKEN
    amp = ClickToken(2**32 - 1, 2**32 - 1, "amp", 2**16 - 1, 2**32 - 1)
    assert codec.decode(codec.encode(amp)) == amp


def test_url_fits_in_80_characters_with_a_30_character_base() -> None:
    base = "https://trk.example-mail.com/x"
    assert len(base) == 30
    token = TokenCodec(["k" * 40]).encode(TOKEN)
    url = f"{base}/c/{token}"
    assert len(url) <= 80
    assert re.fullmatch(r"[A-Za-z0-9_\-.]+", token)


def test_token_carries_no_readable_recipient_id() -> None:
    codec = TokenCodec(["k" * 40])
    token = codec.encode(TOKEN)
    payload = token.split(".")[0]
    raw = base64.urlsafe_b64decode(payload + "==")
    assert (424242).to_bytes(4, "big") not in raw
    # Two recipients of the same link share no recognisable prefix either.
    other = codec.encode(ClickToken(7, 12, "html", 3, 424243))
    assert token[:10] != other[:10]


def test_rotation_newest_signs_all_verify() -> None:
    old = TokenCodec(["old-key" * 6])
    old_token = old.encode(TOKEN)
    rotated = TokenCodec(["old-key" * 6, "new-key" * 6])
    new_token = rotated.encode(TOKEN)
    assert rotated.decode(old_token) == TOKEN
    assert rotated.decode(new_token) == TOKEN
    assert TokenCodec(["new-key" * 6]).decode(new_token) == TOKEN
    with pytest.raises(InvalidToken):
        old.decode(new_token)


def _flip(token: str, index: int) -> str:
    ch = token[index]
    return token[:index] + ("A" if ch != "A" else "B") + token[index + 1 :]


GOOD = TokenCodec(["k" * 40]).encode(TOKEN)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        GOOD[:-1],  # truncated
        GOOD[:20],
        GOOD + "A",  # extended
        _flip(GOOD, 0),  # tampered payload
        _flip(GOOD, 30),  # tampered signature
        GOOD.replace(".", ""),
        GOOD.replace(".", "-"),
        "." * 45,
        "é" * 45,
        GOOD.split(".")[1] + "." + GOOD.split(".")[0],  # halves swapped
        TokenCodec(["another-key" * 4]).encode(TOKEN),  # other key
        # Same bytes, other spelling: the unused low bits of a last base64 digit are set.
        GOOD[:44] + {"A": "B", "Q": "X", "g": "h", "w": "x"}[GOOD[44]],
        GOOD[:21] + {"A": "B", "Q": "X", "g": "h", "w": "x"}[GOOD[21]] + GOOD[22:],
    ],
)
def test_bad_tokens_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidToken):
        TokenCodec(["k" * 40]).decode(bad)


def _signed(payload: str, secret: str, salt: bytes) -> str:
    """``payload`` signed as click tokens are (HMAC-SHA256 cut to 128 bits), under ``salt``."""
    from itsdangerous import Signer
    from itsdangerous.signer import HMACAlgorithm

    class Truncated(HMACAlgorithm):
        def get_signature(self, key: bytes, value: bytes) -> bytes:
            return hmac.new(key, value, hashlib.sha256).digest()[:16]

    signer = Signer(secret, salt=salt, algorithm=Truncated(hashlib.sha256), key_derivation="hmac")
    return signer.sign(payload).decode("ascii")


@pytest.mark.parametrize("salt", [b"cookie-session", b"itsdangerous.Signer", b"clickmap.clicks"])
def test_different_salts_per_purpose_do_not_cross(salt: bytes) -> None:
    # A value signed with the same secret for another purpose (Flask's session cookie uses
    # the salt "cookie-session") is not a click token, even with a valid token's payload.
    codec = TokenCodec(["k" * 40])
    payload = GOOD.split(".")[0]
    # The construction is right: with the click salt it is exactly a valid token ...
    same = _signed(payload, "k" * 40, TokenCodec.SALT)
    assert same == GOOD
    assert codec.decode(same) == TOKEN
    # ... so only the salt differs here, and a well-formed value is rejected for it alone.
    other = _signed(payload, "k" * 40, salt)
    assert len(other) == len(GOOD) and other[22] == "." and other != GOOD
    assert other[44] in "AQgw"
    with pytest.raises(InvalidToken, match="bad signature"):
        codec.decode(other)


# -- message ids ------------------------------------------------------------------------------


def test_a_message_id_names_its_email_and_reads_as_noise() -> None:
    codec = MessageIdCodec(["k1"])
    text = codec.encode(7, 12, 424242)
    assert re.fullmatch(r"cm_[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{22}", text)
    assert "424242" not in text
    found = codec.decode(text)
    assert (found.campaign_id, found.variant_id, found.recipient_id) == (7, 12, 424242)
    # Two recipients of one email share nothing a reader could step from one to the other.
    other = codec.encode(7, 12, 424243)
    assert text[3:25] != other[3:25]


def test_a_forged_or_altered_message_id_is_refused() -> None:
    codec = MessageIdCodec(["k1"])
    text = codec.encode(7, 12, 424242)
    flipped = text[:10] + ("A" if text[10] != "A" else "B") + text[11:]
    for bad in (
        flipped,
        text[:-1],
        text[3:],  # without its prefix
        MessageIdCodec(["another"]).encode(7, 12, 424242),
        "cm_" + TokenCodec(["k1"]).encode(TOKEN),  # a click token is not a message id
        "cm_",
        "",
    ):
        with pytest.raises(InvalidToken):
            codec.decode(bad)


def test_message_ids_survive_key_rotation() -> None:
    old = MessageIdCodec(["k1"]).encode(1, 2, 3)
    assert MessageIdCodec(["k1", "k2"]).decode(old).recipient_id == 3
    with pytest.raises(InvalidToken):
        MessageIdCodec(["k2"]).decode(old)
