"""Readable tables of a bundle (``gemel inspect``) and of a bundle diff (``gemel diff``)."""

from __future__ import annotations

from rich.console import Group as RichGroup
from rich.table import Table

from gemel.merge.diff import BundleDiff
from gemel.merge.manifest import BundleManifest
from gemel.merge.memory import BundleMemory, SharedTensors
from gemel.units import format_bytes


def inspect_tables(
    manifest: BundleManifest,
    memory: BundleMemory,
    shared: list[SharedTensors],
    *,
    top: int = 20,
) -> RichGroup:
    """Per-query bytes, blocks, the heaviest shared layers and the bytes saved."""
    per_query = Table(
        title=f"bundle of workload {manifest.workload!r}: {len(memory.queries)} queries"
    )
    for col in ("query", "model", "params", "shared", "private", "buffers", "blocks"):
        per_query.add_column(col, justify="left" if col in ("query", "model") else "right")
    for q in memory.queries:
        entry = manifest.queries[q.name]
        per_query.add_row(
            q.name,
            entry.model.label,
            format_bytes(q.param_bytes),
            format_bytes(q.shared_param_bytes),
            format_bytes(q.private_param_bytes),
            format_bytes(q.buffer_bytes),
            str(len(entry.blocks)),
        )
    per_query.add_section()
    per_query.add_row(
        "distinct",
        "",
        format_bytes(memory.distinct_param_bytes),
        "",
        "",
        format_bytes(memory.distinct_buffer_bytes),
        str(len(manifest.blocks)),
    )

    blocks = Table(title=f"{len(manifest.blocks)} blocks in {manifest.weights}")
    for col in ("block", "queries", "tensors", "bytes"):
        blocks.add_column(col, justify="right" if col in ("tensors", "bytes") else "left")
    for b in manifest.blocks:
        blocks.add_row(b.name, ", ".join(b.queries), str(len(b.tensors)), format_bytes(b.nbytes))

    heaviest = sorted(shared, key=lambda s: -s.nbytes * (len(s.members) - 1))[:top]
    layers = Table(title=f"heaviest {len(heaviest)} of {len(shared)} shared layers")
    for col in ("layer", "members", "bytes", "saves"):
        layers.add_column(col, justify="right" if col in ("bytes", "saves") else "left")
    for s in heaviest:
        paths = {p for _, p in s.members}
        layer = paths.pop() if len(paths) == 1 else "(various)"
        members = (
            ", ".join(s.queries)
            if layer != "(various)"
            else ", ".join(f"{q}:{p}" for q, p in s.members)
        )
        layers.add_row(
            layer, members, format_bytes(s.nbytes), format_bytes(s.nbytes * (len(s.members) - 1))
        )
    summary = (
        f"saves [bold]{format_bytes(memory.saved_bytes)}[/bold] of "
        f"{format_bytes(memory.unmerged_param_bytes)} unmerged parameter bytes "
        f"([bold]{100 * memory.saved_fraction:.1f}%[/bold]); weights file "
        f"{format_bytes(manifest.weights_nbytes)}"
    )
    if manifest.extra:
        summary += "\n" + ", ".join(f"{k}={v}" for k, v in manifest.extra.items())
    return RichGroup(per_query, blocks, layers, summary)


def diff_tables(diff: BundleDiff, *, top: int = 20) -> RichGroup:
    """Blocks by status, the largest changed tensors, and the bytes to fetch."""
    blocks = Table(title=f"blocks of {diff.b} against {diff.a}")
    for col in ("block", "queries", "bytes", "status"):
        blocks.add_column(col, justify="right" if col == "bytes" else "left")
    for b in diff.blocks:
        blocks.add_row(b.name, ", ".join(b.queries), format_bytes(b.nbytes), b.status)
    largest = sorted(diff.tensors, key=lambda t: -t.nbytes)[:top]
    tensors = Table(title=f"largest {len(largest)} of {len(diff.tensors)} tensors A does not hold")
    for col in ("tensor", "block", "bytes", "status", "used by"):
        tensors.add_column(col, justify="right" if col == "bytes" else "left")
    for t in largest:
        used = ", ".join(t.used_by[:3]) + (
            f" (+{len(t.used_by) - 3})" if len(t.used_by) > 3 else ""
        )
        tensors.add_row(t.id, t.block, format_bytes(t.nbytes), t.status, used)
    parts: list[Table | str] = [blocks]
    if diff.tensors:
        parts.append(tensors)
    if diff.queries_added or diff.queries_removed:
        parts.append(
            f"queries added: {', '.join(diff.queries_added) or '-'}; "
            f"removed: {', '.join(diff.queries_removed) or '-'}"
        )
    if diff.identical:
        parts.append("[bold]identical[/bold]: nothing to fetch")
    else:
        parts.append(
            f"to adopt B an edge box holding A fetches [bold]{format_bytes(diff.fetch_bytes)}"
            f"[/bold] of {format_bytes(diff.b_nbytes)} (whole blocks); "
            f"{format_bytes(diff.changed_tensor_bytes)} of tensors changed"
        )
    return RichGroup(*parts)
