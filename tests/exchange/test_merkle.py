"""RFC 9162 Merkle trees: roots, inclusion and consistency proofs, against the RFC's definitions."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kojinbango.common.merkle import (
    EMPTY_ROOT,
    Frontier,
    ProofError,
    Tree,
    leaf_hash,
    mth,
    verify_consistency,
    verify_inclusion,
)


def leaves(n: int) -> list[bytes]:
    return [leaf_hash(f"entry {i}".encode()) for i in range(n)]


def test_known_roots() -> None:
    assert Tree([]).root() == EMPTY_ROOT == hashlib.sha256(b"").digest()
    one = leaf_hash(b"")
    assert one == hashlib.sha256(b"\x00").digest()
    assert Tree([one]).root() == one
    a, b, c = leaves(3)
    assert (
        Tree([a, b, c]).root()
        == hashlib.sha256(b"\x01" + hashlib.sha256(b"\x01" + a + b).digest() + c).digest()
    )


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=70))
def test_tree_and_frontier_match_the_recursive_definition(n: int) -> None:
    ls = leaves(n)
    tree = Tree(ls)
    frontier = Frontier()
    for i, leaf in enumerate(ls, 1):
        frontier.append(leaf)
        assert frontier.root() == mth(ls[:i]) == tree.root_at(i)
    assert tree.root() == mth(ls)


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_every_inclusion_proof_verifies_and_a_wrong_one_fails(data: st.DataObject) -> None:
    n = data.draw(st.integers(min_value=1, max_value=64))
    size = data.draw(st.integers(min_value=1, max_value=n))
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    ls = leaves(n)
    tree = Tree(ls)
    root = tree.root_at(size)
    proof = tree.inclusion_proof(index, size)
    verify_inclusion(ls[index], index, size, proof, root)
    with pytest.raises(ProofError):
        verify_inclusion(leaf_hash(b"altered"), index, size, proof, root)
    if size > 1:
        with pytest.raises(ProofError):
            verify_inclusion(ls[index], (index + 1) % size, size, proof, root)
        with pytest.raises(ProofError):
            verify_inclusion(ls[index], index, size, proof[:-1], root)


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_consistency_proofs_verify_and_detect_a_rewritten_history(data: st.DataObject) -> None:
    n = data.draw(st.integers(min_value=1, max_value=64))
    old = data.draw(st.integers(min_value=1, max_value=n))
    ls = leaves(n)
    tree = Tree(ls)
    proof = tree.consistency_proof(old, n)
    verify_consistency(old, n, tree.root_at(old), tree.root(), proof)
    # the same history with one early entry altered: the old head no longer fits
    changed = list(ls)
    j = data.draw(st.integers(min_value=0, max_value=old - 1))
    changed[j] = leaf_hash(b"altered")
    forged = Tree(changed)
    if old < n:
        with pytest.raises(ProofError):
            verify_consistency(old, n, tree.root_at(old), forged.root(), forged.consistency_proof(old, n))
    else:
        with pytest.raises(ProofError):
            verify_consistency(old, n, tree.root_at(old), forged.root(), [])


def test_out_of_range_is_refused() -> None:
    tree = Tree(leaves(5))
    with pytest.raises(ProofError):
        tree.inclusion_proof(5)
    with pytest.raises(ProofError):
        verify_inclusion(leaves(1)[0], 3, 3, [], EMPTY_ROOT)
    with pytest.raises(ProofError):
        verify_consistency(4, 3, EMPTY_ROOT, EMPTY_ROOT, [])


def _split(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def _ref_path(m: int, d: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) exactly as RFC 9162 §2.1.3.1 writes it, over the leaves."""
    if len(d) == 1:
        return []
    k = _split(len(d))
    if m < k:
        return _ref_path(m, d[:k]) + [mth(d[k:])]
    return _ref_path(m - k, d[k:]) + [mth(d[:k])]


def _ref_subproof(m: int, d: list[bytes], complete: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of RFC 9162 §2.1.4.1."""
    if m == len(d):
        return [] if complete else [mth(d)]
    k = _split(len(d))
    if m <= k:
        return _ref_subproof(m, d[:k], complete) + [mth(d[k:])]
    return _ref_subproof(m - k, d[k:], False) + [mth(d[:k])]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_a_tree_grown_by_appends_gives_the_rfc_roots_and_proofs_at_every_size(data: st.DataObject) -> None:
    """The network keeps one tree and appends to it; whatever size a proof is asked for, before or
    after later appends, it equals the RFC's recursive definition over the leaves."""
    n = data.draw(st.integers(min_value=1, max_value=90))
    ls = [leaf_hash(data.draw(st.binary(max_size=8)) + bytes([i % 256])) for i in range(n)]
    grown = Tree()
    for i, leaf in enumerate(ls, 1):
        grown.append(leaf)
        assert grown.size == i and grown.root() == mth(ls[:i])
    assert grown.levels == Tree(ls).levels  # the same nodes as building it in one go
    for _ in range(5):
        size = data.draw(st.integers(min_value=1, max_value=n))
        index = data.draw(st.integers(min_value=0, max_value=size - 1))
        assert grown.root_at(size) == mth(ls[:size])
        assert grown.inclusion_proof(index, size) == _ref_path(index, ls[:size])
        old = data.draw(st.integers(min_value=1, max_value=size))
        expected = [] if old == size else _ref_subproof(old, ls[:size], True)
        assert grown.consistency_proof(old, size) == expected
