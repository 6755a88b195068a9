"""RFC 6962 (Certificate Transparency) Merkle trees: hashes, proofs and their
verification, as pure functions.

Leaf hash ``SHA-256(0x00 || entry)``, node hash ``SHA-256(0x01 || left ||
right)``; the tree of ``n`` leaves splits at the largest power of two below
``n`` (RFC 6962 section 2.1). Proofs are built from the hashes of *complete*
subtrees (``2**level`` leaves starting at ``index * 2**level``), which a log
stores as it grows, so any proof needs O(log n) of them
(``NodeSource``), never a pass over the leaves. Verification follows RFC
9162 section 2.1.3.2 and 2.1.4.2.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

NodeSource = Callable[[int, int], bytes]  # (level, index) -> complete subtree hash

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly less than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def subtree_root(nodes: NodeSource, start: int, size: int) -> bytes:
    """The hash of the ``size`` leaves from ``start``; ``start`` is a
    multiple of the largest power of two not above ``size`` (as every range
    the RFC's recursion visits is)."""
    if size & (size - 1) == 0:  # complete: stored
        level = size.bit_length() - 1
        return nodes(level, start >> level)
    k = _split(size)
    return node_hash(subtree_root(nodes, start, k), subtree_root(nodes, start + k, size - k))


def root(nodes: NodeSource, size: int) -> bytes:
    """The tree head hash of the first ``size`` leaves."""
    return subtree_root(nodes, 0, size) if size else EMPTY_ROOT


def inclusion_proof(nodes: NodeSource, index: int, size: int) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of ``size`` leaves
    (RFC 6962 section 2.1.1), leaf end first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    path: list[bytes] = []
    start = 0
    while size > 1:
        k = _split(size)
        if index < k:
            path.append(subtree_root(nodes, start + k, size - k))
            size = k
        else:
            path.append(subtree_root(nodes, start, k))
            index -= k
            start += k
            size -= k
    path.reverse()
    return path


def consistency_proof(nodes: NodeSource, old: int, new: int) -> list[bytes]:
    """The proof that the tree of ``old`` leaves is a prefix of the tree of
    ``new`` leaves (RFC 6962 section 2.1.2)."""
    if not 0 < old <= new:
        raise ValueError(f"no consistency proof from {old} to {new}")
    proof: list[bytes] = []

    def sub(m: int, start: int, n: int, complete: bool) -> None:
        if m == n:
            if not complete:
                proof.append(subtree_root(nodes, start, n))
            return
        k = _split(n)
        if m <= k:
            sub(m, start, k, complete)
            proof.append(subtree_root(nodes, start + k, n - k))
        else:
            sub(m - k, start + k, n - k, False)
            proof.append(subtree_root(nodes, start, k))

    sub(old, 0, new, True)
    return proof


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], expected_root: bytes
) -> bool:
    """RFC 9162 section 2.1.3.2, for a leaf hash."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
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
    return sn == 0 and r == expected_root


def verify_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 section 2.1.4.2."""
    if old > new or old == 0:
        return False
    if old == new:
        return not proof and old_root == new_root
    path = list(proof)
    if old & (old - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, old_root)
    if not path:
        return False
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
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
    return sn == 0 and fr == old_root and sr == new_root


def frontier(size: int) -> list[tuple[int, int]]:
    """The complete subtrees (level, index) that together hold the first
    ``size`` leaves, largest first: one for each bit set in ``size``. They
    are the only stored nodes that appending leaves after them needs as
    left siblings."""
    return [
        (level, (size >> level) - 1)
        for level in reversed(range(size.bit_length()))
        if size >> level & 1
    ]


def completed_nodes(
    index: int, leaf: bytes, left_siblings: NodeSource
) -> list[tuple[int, int, bytes]]:
    """The complete subtrees that appending leaf ``index`` (hash ``leaf``)
    completes, as (level, index, hash), starting with the leaf itself.
    ``left_siblings`` gives stored hashes of the subtrees to its left."""
    made = [(0, index, leaf)]
    level, position, current = 0, index, leaf
    while position & 1:
        current = node_hash(left_siblings(level, position - 1), current)
        level, position = level + 1, position >> 1
        made.append((level, position, current))
    return made
