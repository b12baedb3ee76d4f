from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from kojinbango.domain import identifiers as ids
from kojinbango.domain.identifiers import (
    IdentifierError,
    atena_check_digit,
    corporate_number_check_digit,
    is_valid_corporate_number,
    is_valid_lg_code,
    is_valid_my_number,
    is_valid_resident_code,
    lg_code_check_digit,
    make_atena_number,
    mask_my_number,
    mask_resident_code,
    my_number_check_digit,
    my_number_check_digits_np,
    normalize_digits,
    resident_code_check_digit,
    resident_code_check_digits_np,
    validate_atena_number,
    validate_corporate_number,
    validate_lg_code,
    validate_my_number,
    validate_resident_code,
)

base11 = st.text(alphabet="0123456789", min_size=11, max_size=11)
base10 = st.text(alphabet="0123456789", min_size=10, max_size=10)
MY_WEIGHTS = (6, 5, 4, 3, 2, 7, 6, 5, 4, 3, 2)


def _remainder(base: str) -> int:
    return sum(w * int(c) for w, c in zip(MY_WEIGHTS, base, strict=True)) % 11


# --- 個人番号 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["123456789018", "621498320257", "983205673214"])
def test_my_number_valid_vectors(value: str) -> None:
    assert is_valid_my_number(value)
    assert validate_my_number(value) == value


def test_my_number_invalid_vector() -> None:
    assert not is_valid_my_number("123456789012")
    with pytest.raises(IdentifierError) as exc:
        validate_my_number("123456789012")
    assert exc.value.reason == "check_digit"
    assert exc.value.kind == "個人番号"


def test_my_number_worked_examples() -> None:
    # DOMAIN.md §1.1: sum 180 → 180 mod 11 = 4 → 7; sum 238 → mod 7 → 4.
    assert my_number_check_digit("62149832025") == 7
    assert my_number_check_digit("98320567321") == 4


def test_my_number_remainders_zero_and_one_give_zero() -> None:
    assert my_number_check_digit("00000000000") == 0  # Σ = 0
    # Σ = 12 (≡ 1): digit 6 at weight 2 in the last place.
    assert _remainder("00000000006") == 1
    assert my_number_check_digit("00000000006") == 0


def test_full_width_and_whitespace_are_normalised() -> None:
    assert validate_my_number("\u3000１２３４５６７８９０１８ ") == "123456789018"
    assert normalize_digits("\u3000１２３ ") == "123"
    assert normalize_digits(" 12 3 ") == "12 3"  # internal characters stay


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty"),
        ("\u3000 ", "empty"),
        ("12345678901", "length"),
        ("1234567890123", "length"),
        ("1234 5678 9018", "non_digit"),
        ("1234-5678-9018", "non_digit"),
        ("12345678901a", "non_digit"),
        ("١٢٣٤٥٦٧٨٩٠١٨", "non_digit"),  # Arabic-Indic digits survive NFKC but are not ASCII
        ("123456789012", "check_digit"),
    ],
)
def test_my_number_error_reasons(value: str, reason: str) -> None:
    with pytest.raises(IdentifierError) as exc:
        validate_my_number(value)
    assert exc.value.reason == reason
    assert "個人番号" in str(exc.value)


def test_length_error_message_says_expected_and_actual() -> None:
    with pytest.raises(IdentifierError) as exc:
        validate_my_number("12345678901")
    msg = str(exc.value)
    assert "twelve" in msg and "eleven" in msg
    assert "十二桁" in msg and "十一桁" in msg
    assert exc.value.expected_length == 12 and exc.value.actual_length == 11


def test_check_digit_message() -> None:
    with pytest.raises(IdentifierError) as exc:
        validate_my_number("123456789012")
    assert "check digit does not match" in str(exc.value)
    assert "検査用数字" in str(exc.value)


def test_non_str_is_a_type_error_without_the_value() -> None:
    with pytest.raises(TypeError) as exc:
        validate_my_number(123456789018)  # type: ignore[arg-type]
    assert "123" not in str(exc.value)
    assert not is_valid_my_number(123456789018)  # type: ignore[arg-type]


def test_identifier_error_pickles() -> None:
    err = IdentifierError("個人番号", "length", expected_length=12, actual_length=3)
    again = pickle.loads(pickle.dumps(err))
    assert (again.kind, again.reason, again.expected_length, again.actual_length) == (
        "個人番号",
        "length",
        12,
        3,
    )
    assert str(again) == str(err)


_VALIDATORS = [
    validate_my_number,
    validate_resident_code,
    validate_corporate_number,
    validate_lg_code,
    validate_atena_number,
    my_number_check_digit,
    resident_code_check_digit,
    corporate_number_check_digit,
    lg_code_check_digit,
    atena_check_digit,
]


@given(
    st.text(alphabet="0123456789０１２３４５６７８９ -a\u3000", max_size=20),
    st.sampled_from(_VALIDATORS),
)
def test_error_messages_never_contain_digits(value: str, fn: object) -> None:
    try:
        fn(value)  # type: ignore[operator]
    except IdentifierError as err:
        msg = str(err)
        assert not any(c.isdigit() for c in msg), msg
        # No digit characters at all implies no part of any digit string can appear.
        stripped = normalize_digits(value)
        if any(c.isdigit() for c in stripped):
            assert stripped not in msg
        assert all(not (isinstance(a, str) and any(c.isdigit() for c in a)) for a in err.args)


# --- properties of the mod-11 scheme --------------------------------------------------------


@given(base11)
def test_any_base_with_its_check_digit_validates(base: str) -> None:
    number = base + str(my_number_check_digit(base))
    assert validate_my_number(number) == number


@given(base11, st.integers(0, 11), st.integers(1, 9))
def test_single_substitution(base: str, pos: int, delta: int) -> None:
    number = base + str(my_number_check_digit(base))
    changed = number[:pos] + str((int(number[pos]) + delta) % 10) + number[pos + 1 :]
    if pos == 11:
        # The check digit is a function of the base: changing it is always detected.
        assert not is_valid_my_number(changed)
    else:
        # Weights are 2..7 and 11 is prime, so the remainder always changes; but remainders 0 and 1
        # both give check digit 0, so exactly the 0↔1 remainder swaps slip through.
        undetected = {_remainder(number[:11]), _remainder(changed[:11])} == {0, 1}
        assert is_valid_my_number(changed) == undetected


@given(base11, st.integers(0, 9))
def test_adjacent_transposition_inside_the_base(base: str, pos: int) -> None:
    assume(base[pos] != base[pos + 1])
    number = base + str(my_number_check_digit(base))
    swapped = number[:pos] + number[pos + 1] + number[pos] + number[pos + 2 :]
    # Adjacent weights always differ (mod 11), so the remainder changes; same 0/1 caveat.
    undetected = {_remainder(number[:11]), _remainder(swapped[:11])} == {0, 1}
    assert is_valid_my_number(swapped) == undetected


def test_transposition_with_the_check_digit_is_not_always_detected() -> None:
    # Documenting the scheme, not a bug: the last base digit and the check digit can be swapped
    # undetected when the swapped number happens to be valid too.
    found = None
    for n in range(10**5):
        base = f"{n:011d}"
        number = base + str(my_number_check_digit(base))
        if number[10] != number[11]:
            swapped = number[:10] + number[11] + number[10]
            if is_valid_my_number(swapped):
                found = swapped
                break
    assert found is not None


@given(base11)
def test_validate_is_idempotent_with_full_width_input(base: str) -> None:
    number = base + str(my_number_check_digit(base))
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in number)
    once = validate_my_number("\u3000" + full_width + " ")
    assert once == number
    assert validate_my_number(once) == once


# --- numpy vectorised check digits ----------------------------------------------------------


@given(st.lists(st.integers(0, 10**11 - 1), min_size=1, max_size=50))
def test_numpy_my_number_check_digits_match_scalar(bases: list[int]) -> None:
    got = my_number_check_digits_np(np.array(bases, dtype=np.int64))
    assert got.dtype == np.int64
    assert got.tolist() == [my_number_check_digit(f"{b:011d}") for b in bases]


@given(st.lists(st.integers(0, 10**10 - 1), min_size=1, max_size=50))
def test_numpy_resident_code_check_digits_match_scalar(bases: list[int]) -> None:
    got = resident_code_check_digits_np(np.array(bases, dtype=np.int64))
    assert got.tolist() == [resident_code_check_digit(f"{b:010d}") for b in bases]


def test_numpy_large_random_sample_and_edges() -> None:
    rng = np.random.default_rng(20240101)
    bases = np.concatenate(
        [rng.integers(0, 10**11, size=200_000, dtype=np.int64), np.array([0, 1, 10**11 - 1], dtype=np.int64)]
    )
    got = my_number_check_digits_np(bases)
    sample = rng.choice(bases.size, 3000, replace=False).tolist() + [
        bases.size - 3,
        bases.size - 2,
        bases.size - 1,
    ]
    for i in sample:
        assert got[i] == my_number_check_digit(f"{int(bases[i]):011d}")


def test_numpy_shape_dtype_and_range() -> None:
    arr = np.array([[62149832025, 98320567321]], dtype=np.int64)
    assert my_number_check_digits_np(arr).tolist() == [[7, 4]]
    assert my_number_check_digits_np(np.array([62149832025], dtype=np.uint64)).tolist() == [7]
    assert my_number_check_digits_np(np.array([], dtype=np.int64)).shape == (0,)
    with pytest.raises(ValueError):
        my_number_check_digits_np(np.array([10**11], dtype=np.int64))
    with pytest.raises(ValueError):
        my_number_check_digits_np(np.array([-1], dtype=np.int64))
    with pytest.raises(ValueError):
        resident_code_check_digits_np(np.array([10**10], dtype=np.int64))
    with pytest.raises(TypeError):
        my_number_check_digits_np(np.array([1.0]))  # type: ignore[arg-type]


# --- 住民票コード -----------------------------------------------------------------------------


@given(base10)
def test_resident_code_round_trip(base: str) -> None:
    code = base + str(resident_code_check_digit(base))
    assert validate_resident_code(code) == code
    assert is_valid_resident_code(code)


def test_resident_code_formula_is_the_believed_mod11() -> None:
    # weights 5,4,3,2,7,6,5,4,3,2: "1234567890" → 5+8+9+8+35+36+35+32+27+0 = 195, 195 mod 11 = 8 → 3
    assert resident_code_check_digit("1234567890") == 3
    assert is_valid_resident_code("12345678903")
    assert not is_valid_resident_code("12345678904")
    assert "unsourced" in (resident_code_check_digit.__doc__ or "").lower()


def test_resident_code_errors() -> None:
    with pytest.raises(IdentifierError) as exc:
        validate_resident_code("1234567890")
    assert exc.value.kind == "住民票コード" and exc.value.reason == "length"


# --- 法人番号 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["5835678256246", "1180301018771"])
def test_corporate_number_vectors(value: str) -> None:
    assert is_valid_corporate_number(value)
    assert validate_corporate_number(value) == value


def test_corporate_number_worked_example_and_errors() -> None:
    assert corporate_number_check_digit("835678256246") == 5  # Σ 94, mod 9 = 4 → 5
    assert not is_valid_corporate_number("6835678256246")
    with pytest.raises(IdentifierError) as exc:
        validate_corporate_number("835678256246")
    assert exc.value.reason == "length" and exc.value.kind == "法人番号"


@given(st.text(alphabet="0123456789", min_size=12, max_size=12))
def test_corporate_check_digit_is_one_to_nine(base: str) -> None:
    c = corporate_number_check_digit(base)
    assert 1 <= c <= 9
    assert is_valid_corporate_number(str(c) + base)


def test_corporate_number_known_weakness_zero_nine() -> None:
    # mod 9 cannot see a 0↔9 substitution (DOMAIN.md §1.2): 9·w ≡ 0 (mod 9).
    assert is_valid_corporate_number("1180301018771")
    assert is_valid_corporate_number("1189301018771")
    assert is_valid_corporate_number("1180391018771")


# --- 地方公共団体コード ------------------------------------------------------------------------


def test_lg_code() -> None:
    assert lg_code_check_digit("13101") == 6
    assert validate_lg_code("131016") == "131016"
    assert is_valid_lg_code("011002")  # 札幌市: the leading zero matters
    assert not is_valid_lg_code("131017")
    assert not is_valid_lg_code("11002")
    with pytest.raises(IdentifierError) as exc:
        validate_lg_code("131017")
    assert exc.value.kind == "地方公共団体コード" and exc.value.reason == "check_digit"


# --- 宛名番号 ---------------------------------------------------------------------------------


def test_atena_check_digit_m11w2_7() -> None:
    # "1": 1×2 = 2 → 11 − 2 = 9
    assert atena_check_digit("1") == 9
    # weights cycle 2..7 from the right then restart at 2: seven 1s → 2+3+4+5+6+7+2 = 29 ≡ 7 → 4
    assert atena_check_digit("1111111") == 4
    # remainder 0 → 0
    assert atena_check_digit("0000000000") == 0
    # remainder 1 → the documented decision (0): "5" at weight 2 gives 10; "6" gives 12 ≡ 1
    assert atena_check_digit("6") == ids.ATENA_CHECK_FOR_REMAINDER_ONE == 0


def test_make_and_validate_atena_number() -> None:
    assert make_atena_number(1) == "00000000019"
    assert make_atena_number(6, width=3) == "0060"
    for serial in (0, 1, 6, 12345, 9_999_999_999):
        number = make_atena_number(serial)
        assert len(number) == 11
        assert validate_atena_number(number) == number
        assert validate_atena_number(number, width=10) == number
    with pytest.raises(IdentifierError) as exc:
        validate_atena_number("00000000018")
    assert exc.value.reason == "check_digit" and exc.value.kind == "宛名番号"
    with pytest.raises(IdentifierError):
        validate_atena_number("0019", width=10)
    with pytest.raises(ValueError):
        make_atena_number(-1)
    with pytest.raises(ValueError):
        make_atena_number(10**10)


@given(st.integers(0, 10**10 - 1))
def test_atena_round_trip(serial: int) -> None:
    number = make_atena_number(serial)
    assert int(number[:-1]) == serial
    assert validate_atena_number(number) == number


# --- masking ----------------------------------------------------------------------------------


def test_masks() -> None:
    assert mask_my_number("123456789018") == "********9018"
    assert mask_my_number("１２３４５６７８９０１８") == "********9018"
    assert mask_resident_code("12345678903") == "*******8903"
    # Anything not well-formed is masked completely.
    assert mask_my_number("12345") == "*****"
    assert mask_my_number("1234-5678-9018") == "*" * 14
    assert mask_resident_code("") == ""
