"""Pure card rules: validity periods, PIN formats, photos, and the reader's PIN counters."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from kojinbango.card.chip import Chip, pin_verifiers
from kojinbango.card.photo import PhotoError, synthetic_photo, validate_photo
from kojinbango.card.reader import CardError, CardReader, write_card
from kojinbango.domain.cards import (
    PinFormatError,
    age_on,
    card_expiry,
    certificate_expiry,
    may_hold_signing_certificate,
    nth_birthday_after,
    validate_four_digit_pin,
    validate_sign_pin,
)

D = dt.date


@pytest.mark.parametrize(
    ("birth", "issued", "expected"),
    [
        (D(1980, 5, 10), D(2026, 11, 26), D(2036, 5, 10)),  # adult: 10th birthday after issuance
        (D(1980, 11, 26), D(2026, 11, 26), D(2036, 11, 26)),  # issued on the birthday: it does not count
        (D(2010, 1, 1), D(2026, 11, 26), D(2031, 1, 1)),  # 16 years old: 5th birthday
        (D(2008, 11, 27), D(2026, 11, 26), D(2030, 11, 27)),  # 17 until tomorrow: still a minor
        (D(2008, 11, 26), D(2026, 11, 26), D(2036, 11, 26)),  # 18 today: adult
        (D(2000, 2, 29), D(2026, 3, 1), D(2036, 2, 29)),  # a leap year keeps 29 February
        (D(2012, 2, 29), D(2024, 3, 1), D(2029, 2, 28)),  # a minor: 28 February in a common year
    ],
)
def test_card_expiry(birth: dt.date, issued: dt.date, expected: dt.date) -> None:
    assert card_expiry(birth, issued) == expected


def test_certificates_expire_on_the_fifth_birthday_capped_by_the_card() -> None:
    birth, issued = D(1980, 5, 10), D(2026, 11, 26)
    assert certificate_expiry(birth, issued, card_expiry(birth, issued)) == D(2031, 5, 10)
    child = D(2016, 6, 1)
    assert certificate_expiry(child, issued, D(2030, 1, 1)) == D(2030, 1, 1)
    assert nth_birthday_after(birth, issued, 1) == D(2027, 5, 10)


def test_signing_certificate_not_under_15() -> None:
    assert age_on(D(2011, 11, 27), D(2026, 11, 26)) == 14
    assert not may_hold_signing_certificate(D(2011, 11, 27), D(2026, 11, 26))
    assert may_hold_signing_certificate(D(2011, 11, 26), D(2026, 11, 26))


@pytest.mark.parametrize("pin", ["123", "12345", "12a4", "１２３４", "", " 1234"])
def test_bad_four_digit_pins(pin: str) -> None:
    with pytest.raises(PinFormatError, match="exactly 4 digits") as exc:
        validate_four_digit_pin(pin)
    assert pin.strip() == "" or pin not in str(exc.value)


@pytest.mark.parametrize(
    ("pin", "why"),
    [
        ("ABC12", "6 to 16"),
        ("ABCDEFGHIJKLMNOP1", "6 to 16"),
        ("abc123", "upper-case"),
        ("ABCDEF", "at least one letter and at least one digit"),
        ("123456", "at least one letter and at least one digit"),
        ("ABC-123", "upper-case"),
    ],
)
def test_bad_sign_pins(pin: str, why: str) -> None:
    with pytest.raises(PinFormatError, match=why):
        validate_sign_pin(pin)


def test_good_pins() -> None:
    assert validate_four_digit_pin("0000") == "0000"
    assert validate_sign_pin("A1B2C3") == "A1B2C3"
    assert validate_sign_pin("Z9" * 8) == "Z9" * 8


def _image(fmt: str, size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.effect_noise(size, 60).convert("RGB").save(out, fmt)
    return out.getvalue()


def test_photos() -> None:
    assert validate_photo(synthetic_photo(1)) == "image/png"
    assert validate_photo(_image("JPEG", (480, 600))) == "image/jpeg"
    cases = [
        (b"", "no photo"),
        (b"GIF89a" + b"\0" * 5000, "not a readable JPEG or PNG"),
        (_image("GIF", (480, 600)), "only JPEG or PNG"),
        (_image("PNG", (200, 300)), "each side must be 480 to 6000"),
        (_image("PNG", (800, 600)), "landscape"),
        (_image("PNG", (480, 600))[:3000], "not a readable"),
        (b"x" * (8 * 1024 * 1024), "at most 7 MB"),
        (b"\x89PNG" + b"\0" * 100, "at least 1 KB"),
    ]
    for data, why in cases:
        with pytest.raises(PhotoError, match=why):
            validate_photo(data)


def _card(tmp_path: Path) -> tuple[Path, Chip]:
    face = {
        "name": "山田\u3000太郎",
        "address": "東京都",
        "birth_date": "1980-01-01",
        "sex": "1",
        "expires_on": "2036-01-01",
    }
    chip = Chip.manufacture("1234567890123456", face, "123456789018", "12345678901", with_signing=True)
    chip.set_pin_verifiers(pin_verifiers("1234", "ABC123"))
    chip.install_certificate("auth", b"not-a-real-certificate")
    chip.install_certificate("sign", b"not-a-real-certificate")
    path = tmp_path / "card.json"
    write_card(path, chip)
    return path, chip


def test_reader_counts_and_locks_the_auth_pin(tmp_path: Path) -> None:
    path, _ = _card(tmp_path)
    reader = CardReader(path)
    assert reader.sign_auth("1234", b"x")
    for left in (2, 1):
        with pytest.raises(CardError) as exc:
            reader.sign_auth("0000", b"x")
        assert exc.value.reason == "wrong_pin" and exc.value.tries_left == left
    with pytest.raises(CardError) as exc:
        reader.sign_auth("0000", b"x")
    assert exc.value.reason == "pin_locked"
    with pytest.raises(CardError) as exc:  # the right PIN no longer helps
        reader.sign_auth("1234", b"x")
    assert exc.value.reason == "pin_locked"
    state = json.loads(path.read_text())["jpki"]["auth"]["pin"]
    assert state["tries_left"] == 0  # the counter is on the card, not in the reader
    assert CardReader(path).info()["pins"]["auth"]["tries_left"] == 0
    assert CardReader(path).info()["pins"]["sign"]["tries_left"] == 5  # other PINs untouched


def test_right_pin_resets_the_counter_and_sign_pin_has_five_tries(tmp_path: Path) -> None:
    path, _ = _card(tmp_path)
    reader = CardReader(path)
    with pytest.raises(CardError):
        reader.sign_auth("0000", b"x")
    reader.sign_auth("1234", b"x")
    assert reader.info()["pins"]["auth"]["tries_left"] == 3
    for left in (4, 3, 2, 1):
        with pytest.raises(CardError) as exc:
            reader.sign_with_signing_key("WRONG1", b"x")
        assert exc.value.tries_left == left
    with pytest.raises(CardError, match="locked"):
        reader.sign_with_signing_key("WRONG1", b"x")
    with pytest.raises(CardError, match="locked"):
        reader.signing_certificate("ABC123")  # the 署名用 certificate is behind the PIN too


def test_the_number_is_behind_the_hojo_pin(tmp_path: Path) -> None:
    path, _ = _card(tmp_path)
    reader = CardReader(path)
    assert "my_number" not in json.dumps(reader.info())
    assert reader.read_number("1234")["my_number"] == "123456789018"


def test_not_a_card(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text('{"hello": 1}')
    with pytest.raises(CardError, match="not a kojinbango"):
        CardReader(bad)
    with pytest.raises(CardError, match="no card file"):
        CardReader(tmp_path / "missing.json")
