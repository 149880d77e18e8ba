from __future__ import annotations

import logging

import pytest

from models import runtime
from picsort_local.errors import DeviceUnavailableError
from picsort_local.settings import Settings

GPU_BUILD = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
CPU_BUILD = ["AzureExecutionProvider", "CPUExecutionProvider"]


def test_auto_prefers_cuda_when_offered() -> None:
    assert runtime.choose_providers("auto", GPU_BUILD) == ["CUDAExecutionProvider", "CPUExecutionProvider"]


def test_auto_falls_back_to_cpu() -> None:
    assert runtime.choose_providers("auto", CPU_BUILD) == ["CPUExecutionProvider"]


def test_cpu_never_uses_cuda() -> None:
    assert runtime.choose_providers("cpu", GPU_BUILD) == ["CPUExecutionProvider"]


def test_cuda_requested_but_missing_is_a_clear_error() -> None:
    offered = "onnxruntime offers only AzureExecutionProvider, CPUExecutionProvider"
    with pytest.raises(DeviceUnavailableError, match=offered):
        runtime.choose_providers("cuda", CPU_BUILD)


def test_unknown_device_rejected() -> None:
    with pytest.raises(DeviceUnavailableError, match="unknown device"):
        runtime.choose_providers("tpu", CPU_BUILD)


def test_choice_is_logged_once(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime._log_choice.cache_clear()
    monkeypatch.setattr(runtime, "available_providers", lambda: list(GPU_BUILD))
    with caplog.at_level(logging.INFO, logger="models.runtime"):
        for _ in range(3):
            runtime.choose_providers("auto")
    assert sum("execution providers" in r.message for r in caplog.records) == 1


def test_session_on_faked_gpu_box_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "available_providers", lambda: list(CPU_BUILD))
    with pytest.raises(DeviceUnavailableError):
        runtime.create_session(b"not used", Settings(device="cuda").engine)


def test_threads() -> None:
    assert runtime.inference_threads(Settings(threads=3).engine) == 3
    assert 1 <= runtime.inference_threads(Settings().engine) <= 8


def test_embed_batch_follows_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PICSORT_EMBED_BATCH", raising=False)
    monkeypatch.setattr(runtime, "available_providers", lambda: list(CPU_BUILD))
    assert runtime.embed_batch_size(Settings(device="auto", threads=2).engine) == 4
    assert runtime.embed_batch_size(Settings(device="auto", threads=1).engine) == 1
    monkeypatch.setattr(runtime, "available_providers", lambda: list(GPU_BUILD))
    assert runtime.embed_batch_size(Settings(device="auto", threads=1).engine) == 32
    assert runtime.embed_batch_size(Settings(device="cpu", threads=2).engine) == 4
    assert runtime.embed_batch_size(Settings(device="auto", embed_batch=7).engine) == 7


def test_parallelism_plan_reads_the_engine_and_ingest_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(runtime, "available_providers", lambda: list(CPU_BUILD))
    auto = Settings(device="auto", threads=0, ingest_workers=0)
    assert runtime.plan_parallelism(auto.engine, auto.ingest) == (4, 1)  # one single-thread worker per core
    fixed = Settings(device="auto", threads=3, ingest_workers=2)
    assert runtime.plan_parallelism(fixed.engine, fixed.ingest) == (2, 3)
    monkeypatch.setattr(runtime, "available_providers", lambda: list(GPU_BUILD))
    assert runtime.plan_parallelism(auto.engine, auto.ingest) == (1, 4)  # one worker feeds the GPU
