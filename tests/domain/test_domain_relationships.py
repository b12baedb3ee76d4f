from __future__ import annotations

import itertools

import pytest

from kojinbango.domain.relationships import (
    BASE_TERMS,
    MAX_GENERATIONS,
    generations,
    is_standard_relationship,
    validate_relationship,
)


@pytest.mark.parametrize(
    "term",
    [
        "世帯主",
        "夫",
        "妻",
        "夫（未届）",
        "妻（未届）",
        "子",
        "子（子の夫）",
        "子（子の妻）",
        "父",
        "母",
        "兄",
        "姉",
        "弟",
        "妹",
        "縁故者",
        "同居人",
        "子の子",
        "子の子の子",
        "子の子の子の子",
        "妻の父",
        "父の母",
        "子の夫",
        "子の妻",
        "夫の母",
        "妻（未届）の子",
        "子（子の妻）の父",
    ],
)
def test_standard_terms(term: str) -> None:
    assert validate_relationship(term) == term
    assert is_standard_relationship(term)


def test_normalisation() -> None:
    assert validate_relationship("夫(未届)") == "夫（未届）"
    assert validate_relationship(" 子 の 子 ") == "子の子"
    assert validate_relationship("子（子の夫）の子") == "子（子の夫）の子"


def test_generations() -> None:
    assert generations("子") == 1
    assert generations("子の子の子の子") == 4
    assert generations("子（子の夫）") == 1  # の inside the parentheses is not a 世代
    assert generations("世帯主") == 0
    assert generations("縁故者") == 0


def test_every_chain_up_to_four_is_standard() -> None:
    for n in range(1, MAX_GENERATIONS + 1):
        for chain in itertools.islice(itertools.product(BASE_TERMS, repeat=n), 3000):
            assert is_standard_relationship("の".join(chain))


@pytest.mark.parametrize(
    ("term", "hint"),
    [
        ("祖父", "父の父"),
        ("祖母", "父の母"),
        ("孫", "子の子"),
        ("甥", "兄の子"),
        ("姪", "姉の子"),
        ("おじ", "父の兄"),
        ("伯母", "父の姉"),
        ("長男", "子"),
        ("嫁", "子の妻"),
        ("家事使用人", "同居人"),
        ("内縁の妻", "妻（未届）"),
        ("父の祖母", "父の母"),
    ],
)
def test_non_standard_words_are_rejected_with_a_hint(term: str, hint: str) -> None:
    assert not is_standard_relationship(term)
    with pytest.raises(ValueError) as exc:
        validate_relationship(term)
    msg = str(exc.value)
    assert "not a standard 続柄" in msg or "not used" in msg
    assert hint in msg


def test_five_generations_must_be_enkosha() -> None:
    with pytest.raises(ValueError, match="縁故者"):
        validate_relationship("子の子の子の子の子")


@pytest.mark.parametrize(
    "term",
    [
        "",
        "世帯主の父",
        "同居人の子",
        "の子",
        "子の",
        "子（子の夫",
        "準世帯主",
        "友人",
        "子の友人",
        "妻の妻の妻の妻の妻",
    ],
)
def test_rejected(term: str) -> None:
    assert not is_standard_relationship(term)
    with pytest.raises(ValueError):
        validate_relationship(term)


def test_head_relative_hint() -> None:
    with pytest.raises(ValueError, match="write 父 instead"):
        validate_relationship("世帯主の父")
