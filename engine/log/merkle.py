"""RFC 9162 (RFC 6962) Merkle tree hashing, proofs and proof verification.

Hashing (RFC 9162 §2.1.1): ``leaf = SHA-256(0x00 || record_hash)`` where ``record_hash``
is the 32 raw bytes of the record's SHA-256; ``node = SHA-256(0x01 || left || right)``;
the empty tree hashes to ``SHA-256("")``.

Storage model: only *complete* subtrees are stored, keyed ``(level, index)``: the node at
level ``l`` and index ``i`` is the root of leaves ``[i * 2**l, (i + 1) * 2**l)``. Every
subtree an inclusion or consistency proof needs decomposes into O(log n) of those, so a
proof costs O(log n) reads. :func:`plan_nodes` lists which keys a computation will read so
a store can fetch them in one query.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from engine.errors import LogError

NodeKey = tuple[int, int]
"""``(level, index)`` of a complete subtree."""

NodeReader = Callable[[int, int], bytes]
"""Returns the stored hash of the complete subtree ``(level, index)``."""

EMPTY_ROOT = hashlib.sha256(b"").digest()


@dataclass
class ProofError(LogError):
    """A Merkle proof does not verify."""

    code: str = "proof_invalid"


def leaf_hash(record_hash: bytes) -> bytes:
    """RFC 9162 leaf hash of a record hash (32 raw bytes)."""
    return hashlib.sha256(b"\x00" + record_hash).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def subtree_hash(start: int, end: int, read: NodeReader) -> bytes:
    """MTH(D[start:end]) for a range that arises in RFC 9162's recursion (aligned).

    A power-of-two sized, aligned range is one stored node; any other range splits at the
    largest power of two below its size, as the RFC's definition of MTH does.
    """
    size = end - start
    if size <= 0:
        raise ValueError("empty range")
    if size & (size - 1) == 0 and start % size == 0:
        level = size.bit_length() - 1
        return read(level, start >> level)
    k = _split(size)
    return node_hash(subtree_hash(start, start + k, read), subtree_hash(start + k, end, read))


def root_hash(size: int, read: NodeReader) -> bytes:
    """The tree head of the first ``size`` leaves."""
    return EMPTY_ROOT if size == 0 else subtree_hash(0, size, read)


def inclusion_proof(index: int, size: int, read: NodeReader) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 9162 §2.1.3.1, leaf-side first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index - start < k:
            path.append(subtree_hash(start + k, end, read))
            end = start + k
        else:
            path.append(subtree_hash(start, start + k, read))
            start = start + k
    return list(reversed(path))


def consistency_proof(first: int, second: int, read: NodeReader) -> list[bytes]:
    """PROOF(first, D[0:second]) of RFC 9162 §2.1.4.1 (``0 < first <= second``)."""
    if not 0 < first <= second:
        raise ValueError(f"no consistency proof from size {first} to size {second}")
    proof: list[bytes] = []

    def subproof(m: int, start: int, end: int, complete: bool) -> None:
        n = end - start
        if m == n:
            if not complete:
                proof.append(subtree_hash(start, end, read))
            return
        k = _split(n)
        if m <= k:
            subproof(m, start, start + k, complete)
            proof.append(subtree_hash(start + k, end, read))
        else:
            subproof(m - k, start + k, end, False)
            proof.append(subtree_hash(start, start + k, read))

    subproof(first, 0, second, True)
    return proof


def plan_nodes(compute: Callable[[NodeReader], object]) -> set[NodeKey]:
    """The node keys ``compute`` reads (run against placeholder hashes)."""
    keys: set[NodeKey] = set()

    def record(level: int, index: int) -> bytes:
        keys.add((level, index))
        return bytes(32)

    compute(record)
    return keys


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Iterable[bytes], root: bytes
) -> None:
    """RFC 9162 §2.1.3.2: check that ``leaf`` (a leaf hash) is at ``index`` under ``root``."""
    # 1. The index must lie inside the tree.
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    # 2. fn is the leaf index, sn the last index; 3. r starts at the leaf hash.
    fn, sn, r = index, size - 1, leaf
    # 4. Fold the path in, choosing the side from the bits of fn and sn.
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the tree is deep")
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
    # 5. The path must be exactly consumed and end at the root.
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the tree is deep")
    if r != root:
        raise ProofError("inclusion proof does not lead to the root hash")


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: list[bytes]
) -> None:
    """RFC 9162 §2.1.4.2: check that tree ``second`` extends tree ``first``."""
    if not 0 <= first <= second:
        raise ProofError(f"cannot prove size {first} consistent with size {second}")
    if first == second:
        if proof or first_root != second_root:
            raise ProofError("trees of the same size must have the same root and no proof")
        return
    if first == 0:
        if proof:
            raise ProofError("a proof from the empty tree must be empty")
        return
    # 1. An empty path cannot prove anything between different sizes.
    if not proof:
        raise ProofError("empty consistency proof")
    # 2. When the first tree is a complete subtree its root is the path's starting point.
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    # 3. fn, sn are the last indexes of the two trees; 4. skip levels where fn is odd.
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. Both running hashes start at the first path element.
    fr = sr = path[0]
    # 6. Fold the rest: left siblings feed both roots, right siblings only the second.
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
    # 7. Both roots must match and the path must be exactly consumed.
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if fr != first_root:
        raise ProofError(f"consistency proof does not match the root of size {first}")
    if sr != second_root:
        raise ProofError(f"consistency proof does not match the root of size {second}")


@dataclass
class Frontier:
    """The right edge of a tree: complete-subtree roots, largest (leftmost) first.

    Appending a leaf yields the new complete-subtree nodes to store; the root of the
    current size is the right fold of the frontier. This is all a writer needs in memory.
    """

    size: int
    nodes: list[tuple[int, bytes]]

    @staticmethod
    def keys_for(size: int) -> list[NodeKey]:
        """The stored nodes that make up the frontier of ``size`` leaves."""
        keys: list[NodeKey] = []
        offset = 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                keys.append((level, offset >> level))
                offset += 1 << level
        return keys

    @classmethod
    def load(cls, size: int, read: NodeReader) -> Frontier:
        """Rebuild the frontier of ``size`` from stored nodes."""
        return cls(size, [(lvl, read(lvl, idx)) for lvl, idx in cls.keys_for(size)])

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf hash; returns the new ``(level, index, hash)`` nodes to store."""
        index = self.size
        new = [(0, index, leaf)]
        h, level = leaf, 0
        while self.nodes and self.nodes[-1][0] == level:
            _, left = self.nodes.pop()
            h = node_hash(left, h)
            level += 1
            new.append((level, index >> level, h))
        self.nodes.append((level, h))
        self.size += 1
        return new

    def root(self) -> bytes:
        """The tree head of the current size."""
        if not self.nodes:
            return EMPTY_ROOT
        h = self.nodes[-1][1]
        for _, left in reversed(self.nodes[:-1]):
            h = node_hash(left, h)
        return h
