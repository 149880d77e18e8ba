from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from support import need_shared

from models.packs import (
    INSIGHTFACE_LICENCE,
    ModelPack,
    import_buffalo_zip,
    load_pack,
)
from picsort_local.errors import ModelIntegrityError, ModelPackError, ModelPackMissingError
from picsort_local.settings import Settings

# Recorded when the default pack was first built (see README, "Model packs").
PYPI_SMALL_DETECTOR_SHA256 = "9c162a817c7dd32d35d1f1c6ae6445032d6e73c6c5fe61d8b5b663ba8bc86b30"
PYPI_SMALL_EMBEDDER_SHA256 = "86bab7948f7d721119d4944a2a27405feac57e2042759b7aa2db3f1814e2676d"


@pytest.fixture(scope="module")
def small_pack(engine_settings: Settings) -> ModelPack:
    try:
        return load_pack(engine_settings.models_dir, "pypi-small")
    except ModelPackMissingError as exc:
        pytest.fail(str(exc))


def test_default_pack_matches_recorded_sha256(small_pack: ModelPack) -> None:
    assert small_pack.manifest.detector.sha256 == PYPI_SMALL_DETECTOR_SHA256
    assert small_pack.manifest.embedder.sha256 == PYPI_SMALL_EMBEDDER_SHA256
    assert small_pack.manifest.embedder.embedding_size == 128
    assert "non-commercial" in small_pack.manifest.detector.licence


def test_missing_pack_says_how_to_fetch(tmp_path: Path) -> None:
    with pytest.raises(ModelPackMissingError, match="run: picsort models fetch"):
        load_pack(tmp_path, "pypi-small")


def test_unknown_pack_name(tmp_path: Path) -> None:
    with pytest.raises(ModelPackError, match="unknown model pack"):
        load_pack(tmp_path, "buffalo_xxl")


def test_tampered_file_fails_sha256(small_pack: ModelPack, tmp_path: Path) -> None:
    copy = tmp_path / "pypi-small"
    shutil.copytree(small_pack.root, copy)
    target = copy / small_pack.manifest.embedder.file
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="sha256"):
        load_pack(tmp_path, "pypi-small")


def test_import_buffalo_zip(small_pack: ModelPack, tmp_path: Path) -> None:
    # buffalo_l itself cannot be downloaded here: a zip with the same layout built from our files.
    archive = tmp_path / "buffalo_l.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(small_pack.detector_path, "buffalo_l/det_10g.onnx")
        zf.write(small_pack.embedder_path, "buffalo_l/w600k_r50.onnx")
        zf.writestr("buffalo_l/genderage.onnx", b"unused")
    models_dir = tmp_path / "models"
    pack = import_buffalo_zip(models_dir, archive)
    assert pack.manifest.licence == INSIGHTFACE_LICENCE
    assert load_pack(models_dir, "buffalo_l").manifest.embedder.file == "w600k_r50.onnx"
    # a second import replaces the first atomically
    import_buffalo_zip(models_dir, archive)
    assert sorted(p.name for p in models_dir.iterdir()) == ["buffalo_l"]


def test_import_rejects_wrong_zip(tmp_path: Path) -> None:
    bad = tmp_path / "other.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("readme.txt", "hi")
    with pytest.raises(ModelPackError, match="missing det_10g.onnx, w600k_r50.onnx"):
        import_buffalo_zip(tmp_path / "models", bad)
    not_zip = tmp_path / "fake.zip"
    not_zip.write_bytes(b"not a zip")
    with pytest.raises(ModelPackError, match="not a readable zip"):
        import_buffalo_zip(tmp_path / "models", not_zip)
    assert not (tmp_path / "models" / "buffalo_l").exists()


def test_dir_pack_without_known_files(tmp_path: Path) -> None:
    (tmp_path / "x.onnx").write_bytes(b"nope")
    with pytest.raises(ModelPackError, match="write a manifest.json"):
        load_pack(tmp_path, f"dir:{tmp_path}")


def test_shared_models_load_as_dir_pack(tmp_path: Path) -> None:
    from models.engine import FaceEngine

    shared_models = need_shared("models")
    settings = Settings(pack=f"dir:{shared_models}", models_dir=tmp_path)
    engine = FaceEngine.from_settings(settings.engine)
    pack = load_pack(tmp_path, f"dir:{shared_models}")
    assert pack.manifest.detector.file.endswith("scrfd_500m_bnkps.onnx")
    assert pack.manifest.embedder.embedding_size == 128
    crops = np.random.default_rng(0).integers(0, 255, (3, 112, 112, 3), dtype=np.uint8)
    batched = engine.embedder.embed(crops)
    assert batched.shape == (3, 128)  # the graph's fixed batch of 1 was freed in memory
    singles = np.concatenate([engine.embedder.embed(crops[i : i + 1]) for i in range(3)])
    assert np.abs(batched - singles).max() < 1e-4
