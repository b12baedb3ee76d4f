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
