"""Where block bytes live: a host copy of the weights file and a device arena.

The host store holds the bundle's whole weights file in one buffer (pinned when CUDA is
present), so loading a block is ONE contiguous copy of its byte range. The device arena is one
``uint8`` tensor sized to the budget; blocks get aligned, non-overlapping ranges in it and are
packed together again when free space is too fragmented.
"""

from __future__ import annotations

from pathlib import Path

import torch

from gemel.errors import GemelError

ARENA_ALIGN = 64


class HostStore:
    """The bytes of a weights file in host memory (page-locked when ``pin``)."""

    def __init__(self, path: str | Path, *, pin: bool) -> None:
        path = Path(path)
        size = path.stat().st_size
        self.buffer = torch.empty(size, dtype=torch.uint8, pin_memory=pin)
        with open(path, "rb") as f:
            if f.readinto(memoryview(self.buffer.numpy())) != size:
                raise GemelError(f"{path}: weights file changed while being read")
        self.pinned = pin

    def range(self, offset: int, nbytes: int) -> torch.Tensor:
        return self.buffer[offset : offset + nbytes]


def _align(n: int) -> int:
    return -(-n // ARENA_ALIGN) * ARENA_ALIGN


class DeviceArena:
    """One device buffer; ``alloc`` hands out aligned ranges, ``compact`` packs them."""

    def __init__(self, nbytes: int, device: torch.device) -> None:
        self.nbytes = _align(max(int(nbytes), ARENA_ALIGN))
        self.buffer = torch.empty(self.nbytes, dtype=torch.uint8, device=device)
        self.ranges: dict[str, tuple[int, int]] = {}
        """block id -> (offset, nbytes)"""

    def view(self, key: str) -> torch.Tensor:
        off, n = self.ranges[key]
        return self.buffer[off : off + n]

    def alloc(self, key: str, nbytes: int) -> int | None:
        """First-fit aligned range for ``key``; None if no gap is large enough."""
        pos = 0
        for off, n in sorted(self.ranges.values()):
            if off - pos >= nbytes:
                break
            pos = _align(off + n)
        if pos + nbytes > self.nbytes:
            return None
        self.ranges[key] = (pos, nbytes)
        return pos

    def free(self, key: str) -> None:
        self.ranges.pop(key, None)

    def compact(self) -> list[str]:
        """Move every range down to close the gaps; returns the keys whose range moved."""
        moved = []
        pos = 0
        for key, (off, n) in sorted(self.ranges.items(), key=lambda kv: kv[1][0]):
            if off != pos:
                src = self.buffer[off : off + n]
                self.buffer[pos : pos + n].copy_(src.clone() if off - pos < n else src)
                self.ranges[key] = (pos, n)
                moved.append(key)
            pos = _align(pos + n)
        return moved
