"""Merkle trees of an append-only log, as Certificate Transparency defines them (RFC 9162 §2.1).

Pure functions, no I/O.  A log of n entries has the Merkle Tree Hash ``MTH(D[n])``:

* ``MTH({}) = SHA-256()``; ``MTH({d}) = SHA-256(0x00 || d)`` (leaf hash);
* otherwise, with k the largest power of two smaller than n,
  ``MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))``.

An *inclusion proof* shows that an entry is leaf m of the tree of size n; a *consistency proof* shows
that the tree of size m is a prefix of the tree of size n (nothing was changed or removed, only
appended).  Proof generation works on the leaf hashes; verification follows the RFC's algorithms
(§2.1.3.2 and §2.1.4.2) so that anyone — the portal, a resident, an auditor — can check a proof
with nothing but the leaf, the proof and a signed tree head.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(Exception):
    """A proof does not verify, or its inputs are out of range."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    """k with k < n <= 2k (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class Tree:
    """The perfect subtrees of the tree over ``leaves`` (leaf hashes), level by level; grows by append.

    ``levels[l][i]`` is the hash of the aligned perfect subtree of leaves ``[i·2^l, (i+1)·2^l)``;
    a node is added as soon as both its halves exist, so appending a leaf is amortised O(1) and the
    levels of a tree of size n are exactly those of every smaller prefix.  Every subtree the RFC's
    recursions need is either such a node or splits into O(log n) of them, so a root, an inclusion
    proof or a consistency proof costs O(log² n) hashes at most, never a pass over the leaves.
    """

    def __init__(self, leaves: Sequence[bytes] = ()):
        self.size = 0
        self.levels: list[list[bytes]] = [[]]
        for leaf in leaves:
            self.append(leaf)

    def append(self, leaf: bytes) -> None:
        """Add the next leaf hash (readers of earlier sizes are unaffected: nodes are only added)."""
        self.levels[0].append(leaf)
        level = 0
        while len(self.levels[level]) % 2 == 0:
            pair = self.levels[level]
            if level + 1 == len(self.levels):
                self.levels.append([])
            self.levels[level + 1].append(node_hash(pair[-2], pair[-1]))
            level += 1
        self.size += 1

    def root(self) -> bytes:
        return self.subtree(0, self.size)

    def subtree(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for the ranges the RFC's recursions produce."""
        n = end - start
        if n <= 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0 and start % n == 0:  # a perfect, aligned subtree: a node of a level
            return self.levels[n.bit_length() - 1][start // n]
        k = _largest_power_of_two_below(n)
        return node_hash(self.subtree(start, start + k), self.subtree(start + k, end))

    def root_at(self, size: int) -> bytes:
        """MTH of the first ``size`` leaves."""
        if not 0 <= size <= self.size:
            raise ProofError("tree size out of range")
        return self.subtree(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(m, D[n]) of RFC 9162 §2.1.3.1."""
        n = self.size if size is None else size
        if not 0 <= index < n <= self.size:
            raise ProofError("leaf index out of range")
        return self._path(index, 0, n)

    def _path(self, m: int, start: int, end: int) -> list[bytes]:
        n = end - start
        if n == 1:
            return []
        k = _largest_power_of_two_below(n)
        if m < k:
            return self._path(m, start, start + k) + [self.subtree(start + k, end)]
        return self._path(m - k, start + k, end) + [self.subtree(start, start + k)]

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """PROOF(m, D[n]) of RFC 9162 §2.1.4.1."""
        n = self.size if new_size is None else new_size
        if not 0 < old_size <= n <= self.size:
            raise ProofError("tree sizes out of range")
        if old_size == n:
            return []
        return self._subproof(old_size, 0, n, True)

    def _subproof(self, m: int, start: int, end: int, complete: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if complete else [self.subtree(start, end)]
        k = _largest_power_of_two_below(n)
        if m <= k:
            return self._subproof(m, start, start + k, complete) + [self.subtree(start + k, end)]
        return self._subproof(m - k, start + k, end, False) + [self.subtree(start, start + k)]


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """RFC 9162 §2.1.3.2 with the leaf hash ``leaf``; raises ProofError unless it proves inclusion."""
    if root_from_inclusion(leaf, index, size, proof) != root:
        raise ProofError("inclusion proof does not lead to the signed root")


def root_from_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` leads to from leaf ``index`` of a tree of ``size`` (RFC 9162
    §2.1.3.2 without the final comparison); raises ProofError if the proof cannot be one."""
    if not 0 <= index < size:
        raise ProofError("leaf index is not inside the tree")
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is too short")
    return r


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 §2.1.4.2; raises ProofError unless the old tree is a prefix of the new one."""
    if old_size < 0 or new_size < old_size:
        raise ProofError("tree sizes are not in order")
    if old_size == 0:
        if proof:
            raise ProofError("a consistency proof from the empty tree is empty")
        return
    if old_size == new_size:
        if proof:
            raise ProofError("a consistency proof between equal trees is empty")
        if old_root != new_root:
            raise ProofError("the same tree size has two different roots")
        return
    path = list(proof)
    if not path:
        raise ProofError("consistency proof is empty")
    if old_size & (old_size - 1) == 0:  # the old tree is a perfect subtree: its root starts the walk
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if fr != old_root:
        raise ProofError("consistency proof does not lead to the old root")
    if sr != new_root:
        raise ProofError("consistency proof does not lead to the new root")


def mth(leaves: Sequence[bytes]) -> bytes:
    """The RFC's recursive definition, for tests and small trees."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = _largest_power_of_two_below(n)
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


class Frontier:
    """The compact state of a growing tree: the roots of its perfect subtrees, largest first.

    Appending is O(log n) and the root is available at any time, so a log can sign a tree head
    without rereading its entries.
    """

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[tuple[int, bytes]] = []  # (subtree size, hash)

    def append(self, leaf: bytes) -> None:
        self.size += 1
        node = (1, leaf)
        while self._stack and self._stack[-1][0] == node[0]:
            left = self._stack.pop()
            node = (left[0] * 2, node_hash(left[1], node[1]))
        self._stack.append(node)

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        acc = self._stack[-1][1]
        for _size, h in reversed(self._stack[:-1]):
            acc = node_hash(h, acc)
        return acc
