"""The cluster backend: one Ray task per job on an existing Ray cluster (the ``[ray]`` extra).

Each job is a task of :func:`robot_capture.batch.jobs.run_job` with ``num_cpus=cpus_per_job``
and ``max_retries=retries``: Ray itself resubmits a task whose worker process or node died
(``retry_exceptions=False``: a bad bag is an error result, never retried, it would fail
again). The task argument is the job dict, which holds the bag's **path**: the bag is read
by the worker from the shared archive mount, never shipped through the object store. The
output folder must be on the same shared mount (export shards and retargeted bags are
written there by the workers); only the runner writes the ledger.

At most ``max_in_flight`` tasks are submitted at a time (default: the cluster's CPUs /
``cpus_per_job``), so the "running" count the progress bar shows is what runs, and a
killed runner leaves little queued work behind (Ray cancels a dead driver's tasks).
"""
from __future__ import annotations

import collections
import logging
import os
import socket

from robot_capture.batch.jobs import run_job


class RayUnavailableError(RuntimeError):
    """Ray is not installed, or the cluster cannot be reached (the message says which and what to do)."""


class RayBackend:
    """Run jobs as Ray tasks on the cluster at ``address`` (``auto``: the local node's cluster)."""

    name = "ray"

    def __init__(self, address: str = "auto", cpus_per_job: float = 1.0, retries: int = 2,
                 max_in_flight: int | None = None):
        if cpus_per_job <= 0:
            raise ValueError(f"cpus-per-job must be > 0, got {cpus_per_job}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.address, self.cpus_per_job, self.retries = address or "auto", cpus_per_job, retries
        self.max_in_flight = max_in_flight
        self._ray = None
        self.cluster_cpus = 0.0

    def connect(self):
        """Connect to the cluster (idempotent). Raises RayUnavailableError."""
        if self._ray is not None:
            return self._ray
        try:
            import ray
        except ImportError:
            raise RayUnavailableError("--ray needs Ray: pip install 'robot_capture[ray]'") from None
        host, _, port = self.address.rpartition(":")
        if host and port.isdigit():  # fail in seconds, not after Ray's minutes of GCS retries
            try:
                socket.create_connection((host, int(port)), timeout=5).close()
            except OSError as exc:
                raise RayUnavailableError(f"cannot reach the Ray cluster at {self.address}: {exc.strerror or exc} "
                                          f"(start one with `ray start --head`)") from None
        cwd = os.getcwd()
        try:
            if not ray.is_initialized():
                # Ray puts the driver's working directory on the workers' sys.path: from a source
                # checkout the workers would import its (unbuilt) robot_capture instead of the
                # installed package. Start the driver from "/" so they import what is installed.
                os.chdir("/")
                ray.init(address=self.address, log_to_driver=False, logging_level=logging.WARNING,
                         configure_logging=True, include_dashboard=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise RayUnavailableError(f"cannot reach the Ray cluster at {self.address!r}: "
                                      f"{' '.join(str(exc).split())[:300]} (start one with `ray start --head`)") \
                from None
        finally:
            os.chdir(cwd)
        self._ray = ray
        self.cluster_cpus = float(ray.cluster_resources().get("CPU", 0.0))
        return ray

    def describe(self) -> str:
        self.connect()
        return (f"Ray cluster {self.address} ({self.cluster_cpus:g} CPUs, {self.cpus_per_job:g} per job, "
                f"{self._capacity()} in flight)")

    def _capacity(self) -> int:
        cap = int(self.cluster_cpus // self.cpus_per_job) if self.cluster_cpus else 1
        cap = max(1, cap)
        return min(cap, self.max_in_flight) if self.max_in_flight else cap

    def shutdown(self) -> None:
        if self._ray is not None and self._ray.is_initialized():
            self._ray.shutdown()
        self._ray = None

    def run(self, jobs: list[dict], on_start, on_result, on_crash) -> None:
        if not jobs:
            return
        ray = self.connect()
        task = ray.remote(num_cpus=self.cpus_per_job, max_retries=self.retries,
                          retry_exceptions=False)(run_job)
        queue = collections.deque(jobs)
        in_flight: dict = {}  # ObjectRef -> job
        cap = self._capacity()
        while queue or in_flight:
            while queue and len(in_flight) < cap:
                job = queue.popleft()
                in_flight[task.remote(job)] = job
                on_start(job, 0)
            done, _ = ray.wait(list(in_flight), num_returns=1, timeout=1.0)
            for ref in done:
                job = in_flight.pop(ref)
                try:
                    res = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - Ray gave up (worker/node died past max_retries)
                    detail = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
                    on_crash(job, detail, False)
                    res = {"status": "failed", "sha256": "", "duration_s": 0.0,
                           "error": f"Ray task failed after {self.retries + 1} attempt(s): {detail}",
                           "result": {}, "host": "", "pid": 0, "reused": False}
                on_result(job, res)
