"""The ONE place that chooses onnxruntime execution providers and makes sessions.

`PICSORT_DEVICE=auto` uses CUDA when this onnxruntime build offers it, else the CPU. `cuda` fails loudly
when CUDA is not offered: the usual GPU-box failure is a CPU `onnxruntime` wheel installed next to
`onnxruntime-gpu`, which silently runs everything on the CPU.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from typing import Any, Protocol

import onnxruntime as ort

from picsort_local.errors import DeviceUnavailableError
from picsort_local.settings import EngineSettings, IngestSettings

logger = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
PREFERENCES: dict[str, tuple[str, ...]] = {
    "auto": (CUDA, CPU),
    "cuda": (CUDA, CPU),  # CPU stays as fallback for the few ops CUDA lacks
    "cpu": (CPU,),
}


class InferenceSession(Protocol):
    """What model wrappers need from an onnxruntime session (tests may pass a stand-in)."""

    def get_inputs(self) -> Sequence[Any]: ...

    def get_outputs(self) -> Sequence[Any]: ...

    def run(self, output_names: Sequence[str] | None, input_feed: dict[str, Any]) -> list[Any]: ...


def available_providers() -> list[str]:
    return list(ort.get_available_providers())


def choose_providers(device: str, available: Sequence[str] | None = None) -> list[str]:
    """Filter the preference list for `device` by what this onnxruntime build offers."""
    if device not in PREFERENCES:
        raise DeviceUnavailableError(f"unknown device {device!r}: use auto, cpu or cuda")
    offered = list(available) if available is not None else available_providers()
    chosen = [p for p in PREFERENCES[device] if p in offered]
    if device == "cuda" and CUDA not in chosen:
        raise DeviceUnavailableError(
            "PICSORT_DEVICE=cuda but onnxruntime offers only "
            + ", ".join(offered)
            + ". Install the GPU build (pip install 'picsort-local[gpu]'), uninstall the CPU "
            "'onnxruntime' wheel that shadows it, and check the CUDA/cuDNN libraries are found."
        )
    if not chosen:
        raise DeviceUnavailableError(f"no usable execution provider among {offered}")
    _log_choice(device, tuple(chosen))
    return chosen


@functools.cache
def _log_choice(device: str, chosen: tuple[str, ...]) -> None:
    # The cache makes this log once per distinct choice instead of once per model.
    logger.info("device=%s -> execution providers %s", device, ", ".join(chosen))


def inference_threads(engine: EngineSettings) -> int:
    """Intra-op threads: all cores up to 8 (a 2-core box uses both; a 16-core GPU box keeps
    cores free for decoding, which runs in parallel threads)."""
    if engine.threads:
        return engine.threads
    return max(1, min(os.cpu_count() or 1, 8))


def plan_parallelism(engine: EngineSettings, ingest: IngestSettings) -> tuple[int, int]:
    """(inference workers, intra-op threads per session) for throughput jobs such as ingest.

    Measured on the 2-core CI box (README, benchmarks): two workers with one thread each beat one
    worker with two threads, because small convolutions scale poorly across threads. On CUDA one
    worker feeds the GPU with large batches."""
    cores = os.cpu_count() or 1
    if ingest.workers:
        workers = ingest.workers
    elif CUDA in choose_providers(engine.device):
        workers = 1
    else:
        workers = max(1, min(cores, 4))
    threads = engine.threads or max(1, cores // workers)
    return workers, threads


def embed_batch_size(engine: EngineSettings) -> int:
    """Faces per embedder call: what the settings say, else 32 on CUDA (keeps the GPU busy). On the
    CPU, measured with SFace: a one-thread session (the ingest workers on a small box) is fastest one
    face at a time, a multi-thread session at a few faces (enough work to split, still in cache)."""
    if engine.embed_batch:
        return engine.embed_batch
    if CUDA in choose_providers(engine.device):
        return 32
    return 1 if inference_threads(engine) == 1 else 4


def create_session(model: bytes | str | os.PathLike[str], engine: EngineSettings) -> ort.InferenceSession:
    providers = choose_providers(engine.device)
    options = ort.SessionOptions()
    options.intra_op_num_threads = inference_threads(engine)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # onnxruntime's own warnings about unused initializers are noise
    source = model if isinstance(model, bytes) else os.fspath(model)
    return ort.InferenceSession(source, sess_options=options, providers=providers)
