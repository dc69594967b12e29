"""A measured profile of a bundle on one device: what the simulator and the scheduler plan with.

Written by ``gemel profile`` (:func:`gemel.edge.profiler.profile_bundle`) as JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from gemel.edge.scheduler import CostModel
from gemel.errors import GemelError


class BatchCost(BaseModel):
    """One query at one batch size."""

    model_config = ConfigDict(extra="allow")

    run_s: float
    """median seconds of one batch: preprocessing, forward pass and prediction"""
    activation_bytes: int
    """peak running memory beyond the weights (see the profiler for how it is measured)"""


class QueryProfile(BaseModel):
    """One query: the bytes of every block it needs, and its cost per batch size."""

    model_config = ConfigDict(extra="allow")

    weight_bytes: int
    batches: dict[int, BatchCost]


class BlockProfile(BaseModel):
    """One block: its bytes and the median seconds of one copy into the arena."""

    model_config = ConfigDict(extra="allow")

    nbytes: int
    load_s: float


class Profile(BaseModel):
    """Per block bytes and load time, per query and batch size run time and activation memory,
    and the framework's fixed overhead."""

    model_config = ConfigDict(extra="allow")

    device: str
    overlap_copies: bool
    """True when a block copy can run while a model computes (a side CUDA stream)"""
    overhead_bytes: int
    overhead_s: float
    """fixed time per batch outside the model (scheduling, preprocessing set-up, dispatch)"""
    load_bytes_per_s: float
    blocks: dict[str, BlockProfile]
    queries: dict[str, QueryProfile]

    def cost_model(self) -> CostModel:
        """The scheduler's cost model seeded with these measurements."""
        return CostModel(
            run_s={q: {b: c.run_s for b, c in p.batches.items()} for q, p in self.queries.items()},
            activation_bytes={
                q: {b: c.activation_bytes for b, c in p.batches.items()}
                for q, p in self.queries.items()
            },
            load_bytes_per_s=self.load_bytes_per_s,
            turn_overhead_s=self.overhead_s,
        )

    def load_s(self, block_id: str, nbytes: int) -> float:
        b = self.blocks.get(block_id)
        if b is not None and b.nbytes == nbytes:
            return b.load_s
        return nbytes / self.load_bytes_per_s


def read_profile(path: str | Path) -> Profile:
    """Read a profile written by ``gemel profile``."""
    path = Path(path)
    try:
        return Profile.model_validate(json.loads(path.read_text()))
    except FileNotFoundError:
        raise GemelError(f"{path}: profile not found (write one with 'gemel profile')") from None
    except (OSError, json.JSONDecodeError, ValidationError) as e:
        first = str(e).strip().splitlines()[0]
        raise GemelError(f"{path}: not a gemel profile: {first}") from None
