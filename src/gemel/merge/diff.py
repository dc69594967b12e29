"""What changed between two bundles, and what an edge box holding one must fetch to adopt the other.

Blocks and tensors are compared by content (sha256), so a block that moved to another id, or a
tensor now stored under another id, counts as unchanged. The edge loads a block as one range,
so ``fetch_bytes`` counts whole blocks of B whose contents A does not hold; the bytes of B's
tensors that A holds nowhere are a lower bound for a finer-grained transfer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from gemel.merge.manifest import BundleManifest, read_manifest

BlockStatus = Literal["same", "moved", "changed", "new", "removed"]
"""``same``: A holds a block of these queries with these contents; ``moved``: A holds these
contents for another set of queries; ``changed``: A's block of these queries differs;
``new``: A has no block of these queries; ``removed``: a block of A that B lacks."""


@dataclass(frozen=True)
class BlockChange:
    """One block of bundle B (or a block of A that B no longer has) and how it changed."""

    name: str
    queries: tuple[str, ...]
    nbytes: int
    status: BlockStatus

    def to_json(self) -> dict[str, Any]:
        return {
            "block": self.name,
            "queries": list(self.queries),
            "bytes": self.nbytes,
            "status": self.status,
        }


@dataclass(frozen=True)
class TensorChange:
    """A tensor of B whose contents A holds nowhere."""

    id: str
    block: str
    nbytes: int
    used_by: tuple[str, ...]
    """``query:name`` of every parameter or buffer that uses it"""
    status: Literal["changed", "new"]
    """``changed``: its first user existed in A with other contents; ``new``: it did not"""

    def to_json(self) -> dict[str, Any]:
        return {
            "tensor": self.id,
            "block": self.block,
            "bytes": self.nbytes,
            "status": self.status,
            "used_by": list(self.used_by),
        }


@dataclass(frozen=True)
class BundleDiff:
    """Changes from bundle A to bundle B."""

    a: str
    b: str
    queries_added: tuple[str, ...]
    queries_removed: tuple[str, ...]
    blocks: tuple[BlockChange, ...]
    tensors: tuple[TensorChange, ...]
    b_nbytes: int
    """bytes of all B's blocks"""

    @property
    def fetch_bytes(self) -> int:
        """Bytes of B's blocks an edge box holding A must fetch (whole blocks)."""
        return sum(b.nbytes for b in self.blocks if b.status in ("changed", "new"))

    @property
    def changed_tensor_bytes(self) -> int:
        """Bytes of B's tensors whose contents A holds nowhere."""
        return sum(t.nbytes for t in self.tensors)

    @property
    def identical(self) -> bool:
        return not self.tensors and all(b.status == "same" for b in self.blocks)

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "identical": self.identical,
            "fetch_bytes": self.fetch_bytes,
            "changed_tensor_bytes": self.changed_tensor_bytes,
            "b_bytes": self.b_nbytes,
            "queries_added": list(self.queries_added),
            "queries_removed": list(self.queries_removed),
            "blocks": [b.to_json() for b in self.blocks],
            "tensors": [t.to_json() for t in self.tensors],
        }


def diff_manifests(a: BundleManifest, b: BundleManifest, *, a_label="A", b_label="B") -> BundleDiff:
    """Compare two manifests by content."""
    a_digests = {blk.sha256 for blk in a.blocks}
    a_by_queries = {frozenset(blk.queries): blk for blk in a.blocks}
    b_sets = {frozenset(blk.queries) for blk in b.blocks}
    blocks = []
    for blk in b.blocks:
        old = a_by_queries.get(frozenset(blk.queries))
        if old is not None and old.sha256 == blk.sha256:
            status: BlockStatus = "same"
        elif blk.sha256 in a_digests:
            status = "moved"
        else:
            status = "changed" if old is not None else "new"
        blocks.append(BlockChange(blk.name, blk.queries, blk.nbytes, status))
    for blk in a.blocks:
        if frozenset(blk.queries) not in b_sets:
            blocks.append(BlockChange(blk.name, blk.queries, blk.nbytes, "removed"))

    a_shas = {e.sha256 for e in a.tensors.values()}
    a_locations = {u for users in a.users().values() for u in users}
    b_users = b.users()
    tensors = []
    for tid, e in b.tensors.items():
        users = b_users[tid]
        if e.sha256 in a_shas:
            continue
        status = "changed" if users and users[0] in a_locations else "new"
        tensors.append(TensorChange(tid, b.blocks[e.block].name, e.nbytes, tuple(users), status))
    return BundleDiff(
        a=a_label,
        b=b_label,
        queries_added=tuple(q for q in b.queries if q not in a.queries),
        queries_removed=tuple(q for q in a.queries if q not in b.queries),
        blocks=tuple(blocks),
        tensors=tuple(tensors),
        b_nbytes=sum(blk.nbytes for blk in b.blocks),
    )


def diff_bundles(a: str | Path, b: str | Path) -> BundleDiff:
    """Compare the bundles in folders ``a`` and ``b`` (reads only their manifests)."""
    return diff_manifests(read_manifest(a), read_manifest(b), a_label=str(a), b_label=str(b))
