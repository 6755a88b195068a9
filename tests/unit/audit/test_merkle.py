"""RFC 6962 Merkle trees: roots, proofs and their verification."""

from __future__ import annotations

import pytest

from gateway.audit.merkle import (
    EMPTY_ROOT,
    completed_nodes,
    consistency_proof,
    frontier,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

# The test vectors of RFC 6962's reference implementation (certificate-transparency).
LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]


def naive_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1, MTH, written as the RFC says."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(naive_root(leaves[:k]), naive_root(leaves[k:]))


class Tree:
    """A log's stored complete subtrees, grown leaf by leaf."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}
        for index, entry in enumerate(leaves):
            for level, position, digest in completed_nodes(
                index, leaf_hash(entry), lambda lv, ix: self.nodes[(lv, ix)]
            ):
                self.nodes[(level, position)] = digest

    def node(self, level: int, index: int) -> bytes:
        return self.nodes[(level, index)]


def entries(n: int) -> list[bytes]:
    return [f"entry {i}".encode() for i in range(n)]


def test_the_reference_vectors() -> None:
    tree = Tree(LEAVES)
    assert root(tree.node, 0).hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert root(tree.node, 1).hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )
    assert root(tree.node, 8).hex() == (
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    )


@pytest.mark.parametrize("n", range(1, 34))
def test_roots_and_inclusion_proofs(n: int) -> None:
    leaves = entries(n)
    tree = Tree(leaves)
    for size in range(1, n + 1):
        head = root(tree.node, size)
        assert head == naive_root(leaves[:size])
        for index in range(size):
            proof = inclusion_proof(tree.node, index, size)
            assert verify_inclusion(leaf_hash(leaves[index]), index, size, proof, head)
            assert not verify_inclusion(leaf_hash(b"forged"), index, size, proof, head)
            if size > 1:
                assert not verify_inclusion(
                    leaf_hash(leaves[index]), (index + 1) % size, size, proof, head
                )


@pytest.mark.parametrize("n", range(1, 34))
def test_consistency_proofs(n: int) -> None:
    leaves = entries(n)
    tree = Tree(leaves)
    new_root = root(tree.node, n)
    for old in range(1, n + 1):
        old_root = root(tree.node, old)
        proof = consistency_proof(tree.node, old, n)
        assert verify_consistency(old, n, old_root, new_root, proof)
        # A rewritten past does not verify.
        rewritten = Tree([b"rewritten", *leaves[1:]])
        assert not verify_consistency(old, n, root(rewritten.node, old), new_root, proof)
        if old < n:
            assert not verify_consistency(old, n, old_root, leaf_hash(b"x"), proof)


def test_out_of_range_requests_are_refused() -> None:
    tree = Tree(entries(4))
    with pytest.raises(ValueError):
        inclusion_proof(tree.node, 4, 4)
    with pytest.raises(ValueError):
        consistency_proof(tree.node, 0, 4)
    with pytest.raises(ValueError):
        consistency_proof(tree.node, 5, 4)
    assert not verify_inclusion(leaf_hash(b"entry 0"), 4, 4, [], root(tree.node, 4))
    assert not verify_consistency(3, 2, b"", b"", [])


@pytest.mark.parametrize("start", [0, 1, 2, 3, 5, 8, 13, 63, 64, 100, 255])
def test_appending_needs_no_stored_node_but_the_frontier(start: int) -> None:
    """Each left sibling that appending a batch after ``start`` leaves
    needs is made by the batch itself or is one of ``frontier(start)``,
    so a log reads those alone (in one statement) to append."""
    held = set(frontier(start))
    assert sum(1 << level for level, _ in held) == start  # they hold every leaf once
    made: dict[tuple[int, int], bytes] = {}
    asked: set[tuple[int, int]] = set()

    def sibling(level: int, index: int) -> bytes:
        if (level, index) not in made:
            asked.add((level, index))
        return made.get((level, index), b"\x00" * 32)

    for index in range(start, start + 300):
        for level, position, digest in completed_nodes(index, b"\x01" * 32, sibling):
            made[(level, position)] = digest
    assert asked == held  # and each of them is needed, within 300 appends
