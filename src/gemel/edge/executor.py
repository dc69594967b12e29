"""The real executor: copies block bytes into the device arena and runs real forward passes.

Model parameters and buffers are re-pointed at typed views into the arena once per block load
(no model object is copied per swap, no re-binding per call), so a batch is answered on the
model as it is, through ``answer`` (the runtime passes the query's task hook,
:meth:`gemel.edge.feeds.QueryFeed.answers`, the simulator's path too). On CUDA, copies run on a
side stream and a model waits only for its own blocks, so a prefetch overlaps the current
model's compute; on CPU the same code copies synchronously.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gemel.edge.blocks import Block, LoadPlan
from gemel.edge.store import DeviceArena, HostStore
from gemel.merge.bundle import BundleManifest, weights_path

Prepare = Callable[[str, list[int]], tuple[torch.Tensor | None, list[int]]]
"""``(query, frames) -> (input batch, the frames it holds)``: unreadable frames are left out"""
Answer = Callable[[str, nn.Module, torch.Tensor], list[Any]]
"""``(query, model, input batch on the device) -> one answer per input`` (in inference mode)"""


def manifest_blocks(manifest: BundleManifest) -> list[Block]:
    """The bundle's blocks as the block manager sees them."""
    return [Block(b.name, b.nbytes, frozenset(b.queries)) for b in manifest.blocks]


class TorchExecutor:
    """Runs a bundle's models on tensors that live in one device arena."""

    def __init__(
        self,
        bundle_dir: str | Path,
        manifest: BundleManifest,
        models: Mapping[str, nn.Module],
        *,
        device: str | torch.device,
        arena_bytes: int,
        prepare: Prepare,
        answer: Answer,
    ) -> None:
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.manifest = manifest
        self.models = dict(models)
        self.prepare = prepare
        self.answer = answer
        self.entries = {b.name: b for b in manifest.blocks}
        self.host = HostStore(weights_path(bundle_dir, manifest), pin=self.cuda)
        self.arena = DeviceArena(arena_bytes, self.device)
        self._slots = self._collect_slots()
        self._layout = self._block_layout()
        self._bound_at: dict[str, int] = {}
        self._detach()
        self.copied_bytes = 0
        self._swap_s = 0.0
        self._events: list[tuple[Any, Any]] = []
        self._ready: dict[str, Any] = {}
        self.copy_stream = torch.cuda.Stream(self.device) if self.cuda else None

    # -- binding ----------------------------------------------------------------------------
    def _collect_slots(self) -> dict[str, list[tuple[dict, str]]]:
        """tensor id -> the ``(module._parameters or _buffers, name)`` slots that hold it."""
        slots: dict[str, list[tuple[dict, str]]] = {}
        for q, entry in self.manifest.queries.items():
            model = self.models[q]
            for table, kind in ((entry.params, "_parameters"), (entry.buffers, "_buffers")):
                for name, tid in table.items():
                    path, _, attr = name.rpartition(".")
                    owner = getattr(model.get_submodule(path), kind)
                    slots.setdefault(tid, []).append((owner, attr))
        return slots

    def _block_layout(self) -> dict[str, list[tuple[int, int, torch.dtype, tuple, list, str]]]:
        """block id -> ``(offset in block, nbytes, dtype, shape, slots, sha256)`` per tensor."""
        layout = {}
        for entry in self.manifest.blocks:
            rows = []
            for tid in entry.tensors:
                t = self.manifest.tensors[tid]
                dtype = getattr(torch, t.dtype)
                slots = self._slots.get(tid, [])
                rows.append((t.block_offset, t.nbytes, dtype, tuple(t.shape), slots, t.sha256))
            layout[entry.name] = rows
        return layout

    def _detach(self) -> None:
        """Drop the models' own copies of the weights and move what else they hold to the
        device; real values arrive with the first load of each block."""
        for slots in self._slots.values():
            for table, attr in slots:
                t = table[attr]
                empty = torch.empty(0, dtype=t.dtype, device=self.device)
                if isinstance(t, nn.Parameter):
                    t.data = empty
                else:
                    table[attr] = empty
        for model in self.models.values():
            model.to(self.device)

    def _bind(self, block_id: str) -> None:
        """Point the block's parameters and buffers at its arena range (skipped when the block
        comes back to the range it was last bound to: the views are still right)."""
        offset = self.arena.ranges[block_id][0]
        if self._bound_at.get(block_id) == offset:
            return
        base = self.arena.view(block_id)
        for start, nbytes, dtype, shape, slots, _sha in self._layout[block_id]:
            view = base[start : start + nbytes].view(dtype).view(shape)
            for table, attr in slots:
                t = table[attr]
                if isinstance(t, nn.Parameter):
                    t.data = view
                else:
                    table[attr] = view
        self._bound_at[block_id] = offset

    # -- the executor interface -------------------------------------------------------------
    @property
    def swap_s(self) -> float:
        if self.cuda and self._events:
            torch.cuda.synchronize(self.device)
            self._swap_s += sum(a.elapsed_time(b) / 1000 for a, b in self._events)
            self._events.clear()
        return self._swap_s

    def apply(self, plan: LoadPlan, *, background: bool = False) -> None:
        for b in plan.evict:
            self.arena.free(b.id)
            self._ready.pop(b.id, None)
        for b in plan.load:
            entry = self.entries[b.id]
            if self.arena.alloc(b.id, entry.nbytes) is None:
                if self.cuda:
                    torch.cuda.synchronize(self.device)
                for moved in self.arena.compact():
                    self._bind(moved)
                if self.arena.alloc(b.id, entry.nbytes) is None:
                    raise AssertionError(f"arena of {self.arena.nbytes} bytes cannot hold {b.id}")
            self._copy(b.id, self.host.range(entry.offset, entry.nbytes))
            self._bind(b.id)
            self.copied_bytes += entry.nbytes
        if self.cuda and plan.load and not background:
            self.copy_stream.synchronize()

    def _copy(self, block_id: str, src: torch.Tensor) -> None:
        dst = self.arena.view(block_id)
        if not self.cuda:
            t0 = time.perf_counter()
            dst.copy_(src)
            self._swap_s += time.perf_counter() - t0
            return
        stream = self.copy_stream
        stream.wait_stream(torch.cuda.current_stream(self.device))
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        with torch.cuda.stream(stream):
            start.record(stream)
            dst.copy_(src, non_blocking=True)
            end.record(stream)
        self._events.append((start, end))
        self._ready[block_id] = end

    def run(self, query: str, frames: list[int]) -> list[tuple[int, Any]]:
        x, kept = self.prepare(query, frames)
        if x is None or not kept:
            return []
        if self.cuda:
            current = torch.cuda.current_stream(self.device)
            for b in self.manifest.blocks_of(query):
                ev = self._ready.get(b.name)
                if ev is not None:
                    current.wait_event(ev)
        with torch.inference_mode():
            preds = self.answer(query, self.models[query], x.to(self.device, non_blocking=True))
        return list(zip(kept, preds, strict=True))

    # -- live bundle updates ----------------------------------------------------------------
    def adopt(self, manifest: BundleManifest, host: HostStore, hot: set[str]) -> dict[str, Any]:
        """Switch to a newer bundle of the same queries, between batches.

        A resident block whose contents are unchanged (same block sha256) stays where it is.
        New blocks of the ``hot`` queries (those ready to run now) are assembled at once: a
        tensor whose sha256 is already on the device is copied device to device, only the
        others come from the host. Other blocks load on demand later. Returns what it did,
        including ``resident`` (the new block ids now on the device).
        """
        if self.cuda:
            torch.cuda.synchronize(self.device)
        t0 = time.perf_counter()
        old_layout, old_entries = self._layout, self.entries
        old = {f"old:{k}": v for k, v in self.arena.ranges.items()}
        self.arena.ranges = dict(old)
        on_device: dict[str, int] = {}  # sha256 -> arena offset of a resident copy
        old_by_sha: dict[str, str] = {}
        for key, (off, _n) in old.items():
            bid = key.removeprefix("old:")
            old_by_sha[old_entries[bid].sha256] = key
            for start, _nb, _dt, _sh, _sl, sha in old_layout[bid]:
                on_device.setdefault(sha, off + start)

        self.manifest, self.host = manifest, host
        self.entries = {b.name: b for b in manifest.blocks}
        self._retie()
        self._slots = self._collect_slots()
        self._layout = self._block_layout()
        self._bound_at.clear()
        self._ready.clear()

        kept, loaded = [], []
        from_host = on_device_bytes = 0
        for b in manifest.blocks:
            key = old_by_sha.get(b.sha256)
            if key is not None and old[key][1] == b.nbytes:
                self.arena.ranges[b.name] = self.arena.ranges.pop(key)
                kept.append(b.name)
        for b in manifest.blocks:
            if b.name in kept or not set(b.queries) & hot:
                continue
            if self.arena.alloc(b.name, b.nbytes) is None:
                continue  # no room beside the old blocks: it loads on demand
            dst = self.arena.view(b.name)
            for start, nbytes, _dt, _sh, _sl, sha in self._layout[b.name]:
                src_off = on_device.get(sha)
                if src_off is not None:
                    dst[start : start + nbytes].copy_(self.arena.buffer[src_off : src_off + nbytes])
                    on_device_bytes += nbytes
                else:
                    dst[start : start + nbytes].copy_(host.range(b.offset + start, nbytes))
                    from_host += nbytes
            loaded.append(b.name)
        for key in old:
            self.arena.free(key)
        for bid in [*kept, *loaded]:
            self._bind(bid)
        if self.cuda:
            torch.cuda.synchronize(self.device)
        self.copied_bytes += from_host
        return {
            "adopt_s": time.perf_counter() - t0,
            "bytes_from_host": from_host,
            "bytes_on_device": on_device_bytes,
            "kept_blocks": len(kept),
            "loaded_blocks": len(loaded),
            "resident": [*kept, *loaded],
            "weights": manifest.weights,
        }

    def _retie(self) -> None:
        """One parameter object per tensor of the new manifest, shared by exactly its users."""
        fresh: dict[str, nn.Parameter] = {}
        for q, entry in self.manifest.queries.items():
            model = self.models[q]
            for name, tid in entry.params.items():
                path, _, attr = name.rpartition(".")
                table = model.get_submodule(path)._parameters
                if tid not in fresh:
                    old = table[attr]
                    fresh[tid] = nn.Parameter(old.data, requires_grad=False)
                table[attr] = fresh[tid]
