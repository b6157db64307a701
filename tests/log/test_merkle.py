"""RFC 9162 Merkle tree: roots, proofs and verification against a naive reference."""

from __future__ import annotations

import hashlib

import pytest

from engine.log.merkle import (
    EMPTY_ROOT,
    Frontier,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    plan_nodes,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

N = 64


# -- naive reference: RFC 9162 §2.1.1, §2.1.3.1, §2.1.4.1 written as recursion ---------


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = _k(len(leaves))
    return hashlib.sha256(b"\x01" + ref_mth(leaves[:k]) + ref_mth(leaves[k:])).digest()


def ref_path(m: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = _k(len(leaves))
    if m < k:
        return ref_path(m, leaves[:k]) + [ref_mth(leaves[k:])]
    return ref_path(m - k, leaves[k:]) + [ref_mth(leaves[:k])]


def ref_subproof(m: int, leaves: list[bytes], b: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if b else [ref_mth(leaves)]
    k = _k(n)
    if m <= k:
        return ref_subproof(m, leaves[:k], b) + [ref_mth(leaves[k:])]
    return ref_subproof(m - k, leaves[k:], False) + [ref_mth(leaves[:k])]


# -- fixtures ---------------------------------------------------------------------------

LEAVES = [leaf_hash(hashlib.sha256(b"record %d" % i).digest()) for i in range(N)]


def _stored_tree() -> dict[tuple[int, int], bytes]:
    frontier = Frontier(0, [])
    nodes: dict[tuple[int, int], bytes] = {}
    for leaf in LEAVES:
        for level, index, h in frontier.append(leaf):
            nodes[(level, index)] = h
    return nodes


NODES = _stored_tree()


def read(level: int, index: int) -> bytes:
    return NODES[(level, index)]


# -- tests ------------------------------------------------------------------------------


def test_ct_known_answer_roots() -> None:
    # The RFC 6962 test vector used by certificate-transparency-go and Trillian.
    data = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    want = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
    frontier = Frontier(0, [])
    for d, root in zip(data, want, strict=True):
        frontier.append(hashlib.sha256(b"\x00" + bytes.fromhex(d)).digest())
        assert frontier.root().hex() == root
    assert EMPTY_ROOT.hex().startswith("e3b0c442")


def test_leaf_and_node_prefixes() -> None:
    h = bytes(range(32))
    assert leaf_hash(h) == hashlib.sha256(b"\x00" + h).digest()
    assert node_hash(h, h) == hashlib.sha256(b"\x01" + h + h).digest()


@pytest.mark.parametrize("n", range(1, N + 1))
def test_roots_and_inclusion_match_reference(n: int) -> None:
    leaves = LEAVES[:n]
    root = root_hash(n, read)
    assert root == ref_mth(leaves)
    assert Frontier.load(n, read).root() == root
    for m in range(n):
        proof = inclusion_proof(m, n, read)
        assert proof == ref_path(m, leaves)
        verify_inclusion(leaves[m], m, n, proof, root)


@pytest.mark.parametrize("n", range(1, N + 1))
def test_consistency_matches_reference(n: int) -> None:
    root = root_hash(n, read)
    for m in range(1, n + 1):
        proof = consistency_proof(m, n, read)
        assert proof == ref_subproof(m, LEAVES[:n], True)
        verify_consistency(m, n, ref_mth(LEAVES[:m]), root, proof)


def test_proofs_read_logarithmically_many_nodes() -> None:
    for n in (33, 63, 64):
        for m in range(1, n):
            assert len(plan_nodes(lambda r, m=m, n=n: inclusion_proof(m, n, r))) <= 2 * 7
            assert len(plan_nodes(lambda r, m=m, n=n: consistency_proof(m, n, r))) <= 2 * 7


def test_inclusion_rejects_wrong_leaf_index_size_and_path() -> None:
    n, m = 13, 6
    root = root_hash(n, read)
    proof = inclusion_proof(m, n, read)
    bad_cases = [
        (LEAVES[m + 1], m, n, proof),  # another leaf
        (LEAVES[m], m + 1, n, proof),  # another index
        (LEAVES[m], m, n + 4, proof),  # a size whose path is deeper
        (LEAVES[m], m, n, proof[:-1]),  # truncated path
        (LEAVES[m], m, n, [*proof, proof[0]]),  # extended path
        (LEAVES[m], m, n, [bytes(32), *proof[1:]]),  # altered path
        (LEAVES[m], n, n, proof),  # index outside the tree
    ]
    for leaf, index, size, path in bad_cases:
        with pytest.raises(ProofError):
            verify_inclusion(leaf, index, size, path, root)


def test_consistency_rejects_forks_and_bad_proofs() -> None:
    m, n = 7, 20
    proof = consistency_proof(m, n, read)
    r1, r2 = root_hash(m, read), root_hash(n, read)
    forked = ref_mth([*LEAVES[:3], bytes(32), *LEAVES[4:m]])
    bad_cases = [
        (m, n, forked, r2, proof),
        (m, n, r1, root_hash(n - 1, read), proof),
        (m, n, r1, r2, proof[:-1]),
        (m, n, r1, r2, [*proof, proof[0]]),
        (m, n, r1, r2, []),
        (m + 1, n, r1, r2, proof),
        (m, m, r1, r2, []),
    ]
    for first, second, a, b, path in bad_cases:
        with pytest.raises(ProofError):
            verify_consistency(first, second, a, b, path)
    verify_consistency(m, m, r1, r1, [])
    verify_consistency(0, n, EMPTY_ROOT, r2, [])
