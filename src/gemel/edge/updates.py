"""Live bundle updates: notice a newer bundle published in the same folder while running.

The merge planner publishes every accepted step by replacing the bundle's ``manifest.json``
(atomically, naming a new weights file). A background thread polls the manifest, and when it
names new weights, reads them into a new host store; the engine then adopts the new bundle
between two batches (:meth:`gemel.edge.executor.TorchExecutor.adopt`), so streams never stop.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from gemel.edge.store import HostStore
from gemel.errors import GemelError
from gemel.merge.bundle import BundleManifest, read_manifest, weights_path


class BundleWatcher:
    """Polls ``bundle_dir`` every ``interval_s`` seconds for a newer bundle of ``queries``."""

    def __init__(
        self, bundle_dir: str | Path, current: BundleManifest, *, pin: bool, interval_s: float = 0.2
    ) -> None:
        self.bundle_dir = Path(bundle_dir)
        self.queries = set(current.queries)
        self.pin = pin
        self.interval_s = interval_s
        self._seen = current.weights
        self._pending: tuple[BundleManifest, HostStore] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> BundleWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)

    def poll(self) -> tuple[BundleManifest, HostStore] | None:
        """The newest bundle read since the last call, if any."""
        with self._lock:
            pending, self._pending = self._pending, None
        return pending

    def _watch(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                name = json.loads((self.bundle_dir / "manifest.json").read_text()).get("weights")
                if name == self._seen:
                    continue
                manifest = read_manifest(self.bundle_dir)
                if set(manifest.queries) != self.queries:
                    self._seen = manifest.weights  # a different workload: not adopted
                    continue
                host = HostStore(weights_path(self.bundle_dir, manifest), pin=self.pin)
            except (OSError, ValueError, GemelError):
                continue  # mid-publication: look again at the next poll
            with self._lock:
                self._pending = (manifest, host)
            self._seen = manifest.weights
