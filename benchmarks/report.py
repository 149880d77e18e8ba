"""Render benchmarks/results/*.json as the README's results section (between the markers).

    python benchmarks/report.py --write   # updates README.md in place
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: the repo root, for `benchmarks.bench_load`
    sys.path.insert(0, str(REPO))

R = Path("benchmarks/results")
START, END = "<!-- results:start -->", "<!-- results:end -->"
REL_START, REL_END = "<!-- reliability:start -->", "<!-- reliability:end -->"
EVENT_START, EVENT_END = "<!-- event-scale:start -->", "<!-- event-scale:end -->"
SHIPPED = "crowd z + query expansion (shipped)"


def load(name: str) -> dict[str, Any] | None:
    path = R / name
    return json.loads(path.read_text()) if path.exists() else None


def pct(x: float) -> str:
    return f"{x * 100:.2f}%"


# ---- benchmark results ----------------------------------------------------------------------------
def _lfw() -> list[str]:
    lfw = [(n, load(f"lfw_{n}.json")) for n in ("pypi-small", "shared-mobilefacenet")]
    if not any(d for _, d in lfw):
        return []
    out = ["### LFW verification (`picsort eval lfw`, 10 folds, 6,000 pairs, from raw images)", "",
           "| pack | embedding | accuracy | ± std | TAR@FAR=1e-3 | detection misses |",
           "|---|---|---|---|---|---|"]
    for _name, d in lfw:
        if not d:
            continue
        for label in ("plain", "flip"):
            if label in d:
                r = d[label]
                out.append(f"| {d['pack']} | {label} | {pct(r['accuracy_mean'])} | "
                           f"{r['accuracy_std'] * 100:.2f} | "
                           f"{pct(r['tar_at_far_1e3'])} | {r['detection_misses']}/{r['images']} |")
    small = dict(lfw).get("pypi-small")
    if small and small["plain"].get("threshold_at_far"):
        t = small["plain"]["threshold_at_far"]
        out += ["", f"Tier calibration (pypi-small, plain): cosine at FAR 1e-2 = {t['0.01']:.4f} (low tier), "
                    f"at FAR 1e-3 = {t['0.001']:.4f} (high tier)."]
    out.append("")
    return out


def _engine_summary(e: dict[str, Any]) -> list[str]:
    ng = e["naive_engine_graphs"]
    sessions = ng["sessions"].split(", ")[-1]
    same = e["same_faces"]
    return [
        "### Face engine on WIDER val (`benchmarks/bench_engine.py`)", "",
        f"{e['photos']} photos, {e['ground_truth_faces']} ground-truth faces; same pack, images and detector "
        "settings for every row, measured in one run.", "",
        "| | photos/s | faces/s | faces found |", "|---|---|---|---|",
        "| naive per-image loop, FaceAnalysis style: onnxruntime's default sessions on the pack's files as "
        f"shipped | {e['naive']['photos_per_s']:.3f} | {e['naive']['faces_per_s']:.2f} | "
        f"{e['naive']['faces']} |",
        f"| the same loop on the engine's graphs and sessions ({sessions}) | {ng['photos_per_s']:.3f} | "
        f"{ng['faces_per_s']:.2f} | {ng['faces']} |",
        f"| engine pipeline ({e['engine']['workers']} workers x {e['engine']['threads_per_worker']} thread, "
        f"{e['embed_batch']} face{'s' if e['embed_batch'] != 1 else ''} per embedder call) | "
        f"{e['engine']['photos_per_s']:.3f} | {e['engine']['faces_per_s']:.2f} | {e['engine']['faces']} |",
        "", f"Speed-up over the FaceAnalysis-style loop: **{e['speedup_photos_per_s']:.3f}x**. Of that, the "
        f"engine's graphs and sessions give {e['speedup_naive_engine_graphs_vs_naive']:.3f}x in the naive "
        f"loop, and the pipeline (batches, parallel workers, decoding) "
        f"{e['speedup_vs_naive_engine_graphs']:.3f}x on top. Same faces: {same['matched_iou_0.5']} of "
        f"{same['engine_faces']} matched at IoU 0.5, embedding cosine mean "
        f"{same['embedding_cosine_mean']:.5f} (min {same['embedding_cosine_min']:.4f}).", ""]


def _engine_micro(e: dict[str, Any]) -> list[str]:
    sessions = e["naive_engine_graphs"]["sessions"].split(", ")[-1]
    m = e["micro_single_session_all_cores"]
    one = e["micro_one_thread_ms_per_face"]
    rows = [(f"as shipped, {sessions}", m["embedding_ms_per_face_as_shipped"]),
            (f"PRelu rewritten, {sessions}", m["embedding_ms_per_face_engine_graph"]),
            ("as shipped, 1 thread", one["as_shipped"]), ("PRelu rewritten, 1 thread", one["engine_graph"])]
    out = [f"Detection {m['detection_ms_per_image']:.1f} ms/photo. Embedding ms/face by batch size "
           "(best of 3 on 64 crops):", "",
           "| graph | " + " | ".join(k.replace("batch", "batch ") for k in rows[0][1]) + " |",
           "|---|" + "---|" * len(rows[0][1])]
    out += [f"| {label} | " + " | ".join(f"{v:.2f}" for v in values.values()) + " |"
            for label, values in rows]
    return out


def _engine(e: dict[str, Any]) -> list[str]:
    out = _engine_summary(e)
    if "speedup_per_block" in e:
        blocks, own = e["speedup_per_block"], e["speedup_vs_naive_engine_graphs_per_block"]
        out += [f"The arms took turns on {len(blocks)} blocks of photos, in rotating order, so a drift in "
                f"machine speed weighs on all of them alike. Per block, the speed-up was {min(blocks):.3f}x "
                f"to {max(blocks):.3f}x (pipeline alone {min(own):.3f}x to {max(own):.3f}x).", ""]
    if "engine_by_embed_batch" in e:
        by = sorted(e["engine_by_embed_batch"].items(), key=lambda kv: int(kv[0]))
        out += ["Engine photos/s by faces per embedder call (same run, interleaved): "
                + ", ".join(f"{k}: {v:.3f}" for k, v in by) + ".", ""]
    out += _engine_micro(e)
    out += ["",
            "Recall by face height (IoU ≥ 0.4):", "",
            "| height | found | total | recall |", "|---|---|---|---|"]
    for k, v in e["recall_engine"].items():
        recall = pct(v["recall"]) if v["recall"] is not None else "-"
        out.append(f"| {k} | {v['found']} | {v['total']} | {recall} |")
    if "detector_sweep" in e:
        out += ["", f"Detector settings sweep ({e['detector_sweep']['photos']} photos):", "",
                "| target face px | pad | global view | ms/photo | recall ≥24 px |", "|---|---|---|---|---|"]
        for r in e["detector_sweep"]["runs"]:
            out.append(f"| {r['target_face_px']} | {r['pad_ratio']} | {r['global_size']} | "
                       f"{r['ms_per_photo']:.1f} | {pct(r['recall']['ge24px']['recall'])} |")
    out += ["", "![engine](benchmarks/results/engine.png)", ""]
    return out


def _grouping(g: dict[str, Any]) -> list[str]:
    c = g["chosen"]
    return ["### Grouping (`benchmarks/bench_grouping.py`)", "",
            f"LFW-derived event: {g['event']['faces']} faces, {g['event']['identities']} identities "
            f"({g['event']['identities_with_2plus']} with 2+ photos, {g['event']['singles']} seen once).", "",
            f"Chosen: eps={c['eps']}, min_samples={c['min_samples']} → pairwise precision "
            f"{pct(c['pairwise_precision'])}, recall {pct(c['pairwise_recall'])}; BCubed P "
            f"{pct(c['bcubed_precision'])}, R {pct(c['bcubed_recall'])}, "
            f"F1 {pct(c['bcubed_f1'])}; {c['persons']} persons.", ""]


def _models_limit(i: dict[str, Any]) -> str:
    lim = i["models_limit"]
    if "hog_ms_per_photo" in lim and i.get("bodies_pass"):
        return (f"Models' own limit, models alone on pre-decoded photos: {lim['detection_ms_per_photo']:.1f} "
                f"ms detection + {lim['faces_per_photo']:.2f} faces × {lim['embedding_ms_per_face']:.2f} ms "
                f"embedding + {lim['hog_ms_per_photo']:.1f} ms HOG people detector (the faceless-body pass) "
                f"= {lim['photos_per_s']:.3f} photos/s; the face models alone (1 / (detection + faces × "
                f"embedding)) = {lim['photos_per_s_face_models']:.3f} photos/s. Ingest reaches "
                f"**{pct(i['ingest_vs_models_limit'])}** of the limit of the models it runs "
                f"({pct(i['ingest_vs_face_models_limit'])} of the face models alone), and "
                f"**{i['ingest_vs_naive']:.3f}x** the naive per-photo loop doing the same work, body pass "
                f"included ({i['naive_loop']['photos_per_s']:.3f} photos/s).")
    return ("Models' own limit (1 / (detection + faces × embedding), models alone): "
            f"{lim['photos_per_s']:.3f} photos/s ({lim['detection_ms_per_photo']:.1f} ms detection + "
            f"{lim['faces_per_photo']:.2f} faces × {lim['embedding_ms_per_face']:.2f} ms). Ingest reaches "
            f"**{pct(i['ingest_vs_models_limit'])}** of it, and **{i['ingest_vs_naive']:.3f}x** the naive "
            f"per-photo loop ({i['naive_loop']['photos_per_s']:.3f} photos/s).")


def _ingest(i: dict[str, Any]) -> list[str]:
    w = i["wider"]
    out = ["### Ingest (`benchmarks/bench_ingest.py`)", "",
           "| run | photos | faces | photos/s | faces/s |", "|---|---|---|---|---|",
           f"| WIDER val, full pipeline | {w['photos']} | {w['faces']} | {w['photos_per_s']:.3f} | "
           f"{w['faces_per_s']:.2f} |"]
    if "synthetic" in i:
        s = i["synthetic"]
        out.append(f"| synthetic event (LFW faces on WIDER backgrounds) | {s['photos']} | {s['faces']} | "
                   f"{s['photos_per_s']:.3f} | {s['faces_per_s']:.2f} |")
    memory = w["memory"]
    out += ["", _models_limit(i),
            f"Memory per indexed face: {memory['in_ram_flat_index_bytes_per_face']} B in the flat index in "
            f"RAM, {memory['index_bytes_per_face_latest_snapshot']:.0f} B per face in a snapshot, "
            f"{memory['metadata_bytes_per_face']:.0f} B of metadata (SQLite, incl. WAL) per face.", ""]
    return out


def _ingest_no_bodies(nb: dict[str, Any]) -> list[str]:
    return [f"Without the faceless-body (HOG) pass (`--no-bodies`, same machine, separate run): "
            f"{nb['wider']['photos_per_s']:.3f} photos/s = **{pct(nb['ingest_vs_models_limit'])}** of the "
            f"models' limit measured in that run ({nb['models_limit']['photos_per_s']:.3f} photos/s), "
            f"{nb['ingest_vs_naive']:.3f}x the naive loop.", ""]


def _search(s: dict[str, Any]) -> list[str]:
    out = ["### Index search against event size (`benchmarks/bench_search.py`)", "",
           f"k={s['k']}, {s['queries']} single queries, {s['dim']}-d.", "",
           "| faces | index | build s | p50 ms | p95 ms | recall@k | recall@10 |",
           "|---|---|---|---|---|---|---|"]
    for r in s["runs"]:
        out.append(f"| {r['faces']} | {r['kind']} | {r['build_s']:.2f} | {r['p50_ms']:.2f} | "
                   f"{r['p95_ms']:.2f} | {r['recall_at_k']:.4f} | {r.get('recall_at_10', 1.0):.4f} |")
    return out + ["", "![search](benchmarks/results/search.png)", ""]


def _search_latency(lat: dict[str, Any]) -> list[str]:
    out = ["### Selfie search latency over HTTP (`benchmarks/bench_search_latency.py`)", "",
           "| faces in event | searches | p50 ms | p95 ms | the decision alone, p50 ms | a plain top-256 "
           "search, p50 ms | ratio |", "|---|---|---|---|---|---|---|"]
    for r in lat["runs"]:
        d = r.get("decision")
        extra = (f"{d['decision_p50_ms']:.2f} | {d['top256_p50_ms']:.2f} | {d['ratio_p50']:.2f}x" if d
                 else "| |")
        out.append(f"| {r['faces']} | {r['ok']}/{r['searches']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
                   f"{extra} |")
    return out + ["", "The last three columns are in-process and interleaved on the same event: the search "
                  "decision (crowd normalisation, size-aware tiers, query expansion) against the old "
                  "path's core.",
                  ""]


def _providers() -> list[str]:
    providers = [(n, load(f"provider_{n}.json")) for n in ("local", "loopback")]
    if not any(d for _, d in providers):
        return []
    out = ["### Rekognition-compatible provider benchmark "
           "(`benchmarks/bench_provider.py`, docs/rekognition.md)", ""]
    first = next(d for _, d in providers if d)
    ds = first["dataset"]
    out += [f"LFW event: {ds['identities']} identities x {ds['gallery_per_identity']} photos + "
            f"{ds['distractors']} distractors, {ds['probes']} held-out probes; {first['operation']}.", "",
            "| provider | threshold | precision | recall | probes without a match | p50 ms | p95 ms |",
            "|---|---|---|---|---|---|---|"]
    for name, d in providers:
        if not d:
            continue
        for t, r in d["search_faces_by_image"].items():
            out.append(f"| {name} | {t} | {r['precision']:.4f} | {r['recall']:.4f} | "
                       f"{r['queries_without_match']} | {r['latency_ms']['p50']} | "
                       f"{r['latency_ms']['p95']} |")
    out.append("")
    return out


# Each results file and the section it renders, in README order.
def _redesign_ab(ab: dict[str, Any]) -> list[str]:
    """The redesign (issue 13) against the commit before it, interleaved in one run."""
    out = ["", f"### This code against its baseline (`benchmarks/bench_ab.py`, baseline {ab['baseline']})", "",
           f"Each tree runs its own benchmark script in its own process on the same machine and data, "
           f"{ab['rounds']} runs each, order alternating every round; medians, and their ratio "
           f"(search: an event of {ab['faces']} faces; ingest: {ab['photos']} WIDER val photos).", "",
           "| workload | metric | baseline: median (runs) | now: median (runs) | now / baseline |",
           "|---|---|---|---|---|"]
    for workload in ("search", "ingest"):
        runs = ab.get(workload, {}).get("runs", {})
        for metric, m in ab.get(workload, {}).get("summary", {}).items():
            better = "lower is better" if m["lower_is_better"] else "higher is better"
            spread = {tree: ", ".join(f"{r[metric]:.4g}" for r in runs.get(tree, [])) for tree in ("base", "new")}
            out.append(f"| {workload} | {m['what']} ({better}) | {m['base']:.4g} ({spread['base']}) | "
                       f"{m['new']:.4g} ({spread['new']}) | {m['ratio_new_over_base']:.3f} |")
    return [*out, ""]


SECTIONS = (("engine.json", _engine), ("grouping.json", _grouping), ("ingest.json", _ingest),
            ("ingest_no_bodies.json", _ingest_no_bodies), ("search.json", _search),
            ("search_latency.json", _search_latency), ("redesign_ab.json", _redesign_ab))


def render() -> str:
    out: list[str] = ["_Generated by `python benchmarks/report.py --write` from `benchmarks/results/*.json`; "
                      "2-core CPU box, no GPU; every ratio is between runs in the same process._", ""]
    out += _lfw()
    for name, section in SECTIONS:
        data = load(name)
        if data:
            out += section(data)
    out += _providers()
    ld = load("load.json")
    if ld:
        from benchmarks.bench_load import markdown as load_markdown

        out += load_markdown(ld)
    return "\n".join(out)


# ---- reliability -------------------------------------------------------------------------------------
def _ms(lat: dict[str, Any]) -> str:
    return f"{lat['p50_ms']:.0f} / {lat['p95_ms']:.0f} / {lat['p99_ms']:.0f}"


def _fuzz(f: dict[str, Any]) -> list[str]:
    rek = (f["rekognition_cases"] + f.get("rekognition_extreme_number_cases", 0)
           + f.get("rekognition_determinism_cases", 0))
    return [f"- **Fuzzing** (`tests/search/test_fuzz.py`, in CI): {f['schemathesis_cases']} schemathesis "
            f"cases over {len(f['per_operation'])} operations of our own OpenAPI spec (host, guest, ops, "
            f"files), real credentials and ids swapped in so handlers are reached; {rek} hypothesis cases "
            f"against the Rekognition JSON API. Server errors: **{f['server_errors']}**."]


def _auth(a: dict[str, Any]) -> list[str]:
    parts = ", ".join(f"{k} {v['endpoints']} endpoints → {v['cases']} cases"
                      for k, v in sorted(a["by_class"].items()))
    return [f"- **Auth matrix** (`tests/search/test_auth_matrix.py`, in CI): **{a['cases']}** denied "
            f"endpoint × fault cases ({parts}); each compared byte for byte between an existing and a "
            "missing resource, so a denial never tells whether an event, photo or face exists."]


def _crash(c: dict[str, Any]) -> list[str]:
    out = []
    if "uploads" in c:
        u = c["uploads"]
        out += ["- **kill -9 during multipart uploads** (`tests/search/test_crash_restart.py`, in CI): "
                f"{len(u['kill_cycles'])} kill/restart cycles, {u['requests_cut_mid_body']} requests cut "
                f"mid-body; after restart {u['acknowledged']} of {u['photos']} photos acknowledged and "
                f"found, {u['final'].get('faces', '?')} face rows = {u['final'].get('vectors', '?')} index "
                "vectors, no duplicate."]
    if "snapshot_writes" in c:
        w = c["snapshot_writes"]
        out += ["- **kill -9 inside an index snapshot write** (torn temp file) and just before the `CURRENT` "
                "rename: the index loaded the previous whole snapshot both times "
                f"({w['torn_snapshot']['vectors']} vectors); after restart {w['acknowledged']} of "
                f"{w['photos']} photos acknowledged and indexed once ({w['final'].get('faces', '?')} faces = "
                f"{w['final'].get('vectors', '?')} vectors)."]
    return out


def _load(ld: dict[str, Any]) -> list[str]:
    pa, pb = ld["phase_a"], ld["phase_b"]
    ing = pa["ingest"]
    errors_a = pa.get("errors_all_requests", pa["errors"])["total"]
    alone = ld["scaling"]["clients_1"]
    slope = pb["rss_slope_mb_per_1000_searches"]
    return [f"- **Load during ingest** (`benchmarks/bench_load.py`; CI runs a short form): {pa['clients']} "
            f"clients for {pa['window_s']:.1f} s of selfie searches (plus downloads and job polls) while "
            f"{ing['photos_uploaded']} photos were uploaded and ingested: **{errors_a} errors** in "
            f"{pa['requests']} requests; {pa['searches']} searches, {pa['throughput_searches_per_s']:.2f}/s; "
            f"search latency p50/p95/p99 **{_ms(pa['search_latency'])} ms** (searches run one per core, so "
            f"the clients queue: a single client alone gets {alone['throughput_searches_per_s']:.2f} "
            f"searches/s, p50 {alone['search_latency']['p50_ms']:.0f} ms); the ingest kept going at "
            f"{ing['photos_per_s_in_window']:.2f} photos/s during the window and finished at "
            f"{ing['photos_per_s_overall']:.2f} photos/s overall.",
            f"- **{pb['searches']} searches in a row** with the server's RSS sampled every "
            f"{pb['rss_every']}: **{pb['errors']['total']} errors**, p50/p95/p99 {_ms(pb['search_latency'])} "
            f"ms; RSS {pb['rss_start_mb']:.1f} MB at the start, {pb['rss_after_warmup_mb']:.1f} MB after "
            f"{pb['warmup_searches']} warm-up searches, {pb['rss_end_mb']:.1f} MB at the end: slope "
            f"{slope:.3f} MB per 1,000 searches ({'flat' if abs(slope) < 1.0 else 'GROWING'}); the RSS curve "
            "is under Benchmark results → Load."]


def render_reliability() -> str:
    """The README's Reliability figures: fuzzing, auth matrix, crash-restart outcomes, load and RSS."""
    out: list[str] = []
    for name, section in (("fuzz.json", _fuzz), ("auth_matrix.json", _auth), ("crash.json", _crash),
                          ("load.json", _load)):
        data = load(name)
        if data:
            out += section(data)
    if not out:
        return ""
    generated = "_Generated by `python benchmarks/report.py --write` from `benchmarks/results/*.json`._"
    return "\n".join([generated, "", *out])


# ---- search at event scale ---------------------------------------------------------------------------
def _tier_row(label: str, h: dict[str, Any]) -> str:
    return (f"| {label} | {h['precision']:.4f} | {h['recall_per_search']:.4f} | {h['recall_all_photos']:.4f} "
            f"| {h['strangers_mean']:.3f} | {h['strangers_p95']:.0f} | {pct(h['searches_with_stranger'])} |")


def _event_high_tier(r: dict[str, Any]) -> list[str]:
    head = ("| event (faces, searches) · decision | precision | recall per search | recall of all true "
            "photos | strangers per search | p95 | searches with a stranger |")
    out = ["_Generated by `python benchmarks/report.py --write` from `benchmarks/results/event_scale.json` "
           f"(`python benchmarks/bench_event_scale.py ... --dlib`); {r['half']} half of LFW's people._", "",
           "**High tier** (\"your photos\"), leave-one-out searches:", "", head,
           "|---|---|---|---|---|---|---|"]
    for e in r["events"]:
        for d, v in e["decisions"].items():
            out.append(_tier_row(f"{e['event']} ({e['faces']:,}, {e['searches']}) · {d}", v["high"]))
    for e in r.get("dlib") or []:
        for tol in ("tolerance 0.6", "tolerance 0.5"):
            if tol in e:
                label = f"{e['event']} ({e['faces']:,}, {e['searches']}) · face_recognition (dlib), {tol}"
                out.append(_tier_row(label, {**e[tol], "strangers_p95": e[tol]["strangers_p95"]}))
    return out


def _event_maybe(r: dict[str, Any]) -> list[str]:
    out = ["", "**\"Maybe\" tier** as shown on request (now: the rest of the guest's person groups, then at "
               "most 3 other candidates; before: every photo between the two fixed bars):", "",
           "| event · decision | correct / returned | strangers per search "
           "| true photos it adds (share of all) |",
           "|---|---|---|---|"]
    for e in r["events"]:
        for d in ("fixed LFW tiers (before)", SHIPPED):
            m = e["decisions"][d]["maybe_shown"]
            out.append(f"| {e['event']} · {d} | {m['correct']} / {m['returned']} | {m['strangers_mean']:.2f} "
                       f"| {pct(m['recall_gain'])} |")
    return out


def _event_mixed(r: dict[str, Any]) -> list[str]:
    if not r.get("mixed"):
        return []
    out = ["", "**Mixed events** (group photos on WIDER crowds with pasted guests, plus portraits; "
           "13 guests × 5 selfies each):", "",
           "| event (photos, faces) · decision | precision | recall per search | strangers per search | "
           "maybe: correct / returned |", "|---|---|---|---|---|"]
    for e in r["mixed"]:
        for d, v in e["decisions"].items():
            out.append(f"| mixed #{e['seed']} ({e['photos']}, {e['faces']}) · {d} | {v['precision']:.4f} | "
                       f"{v['recall_per_search']:.4f} | {v['strangers_mean']:.3f} | "
                       f"{v['maybe_correct']} / {v['maybe_returned']} |")
    return out


def _event_similarity_and_refusals(r: dict[str, Any]) -> list[str]:
    out: list[str] = []
    lfw_all: dict[str, Any] = next((e["decisions"] for e in r["events"] if e["event"] == "lfw-all"), {})
    new, old = (lfw_all.get(d, {}).get("similarity_of_true_high")
                for d in (SHIPPED, "fixed LFW tiers (before)"))
    if new and old:
        out += ["", f"Similarity (0-100) of the true photos in the high tier, all-LFW event: now p10 "
                    f"{new['p10']:.1f}, median {new['median']:.1f}, shown as 100.0 for "
                    f"{pct(new['shown_as_100'])}; the old scale: p10 {old['p10']:.1f}, median "
                    f"{old['median']:.1f}, shown as 100.0 for {pct(old['shown_as_100'])}."]
    ref = r["selfie_refusals"]["report"]
    out += ["", f"Selfies refused as \"too many faces\" ({ref['photos']:,} LFW portraits of the report "
                f"half): old rule {pct(ref['old_rule'])}, new rule {pct(ref['new_rule'])}.", ""]
    return out


def _event_extrapolation(r: dict[str, Any]) -> list[str]:
    out = ["**Extrapolation** (not measured: the crowd model's tail and the report half's true-match scores, "
           "plain query without expansion):", "",
           "| faces | z for the high tier | expected recall per true pair | strangers per search (the "
           "policy's target, by construction of the bar) | strangers per search with the old fixed tiers |",
           "|---|---|---|---|---|"]
    for x in r["extrapolation"]:
        out.append(f"| {x['faces']:,} | {x['z_high']:.2f} | {pct(x['recall_per_pair'])} | "
                   f"{x['strangers_per_search']} | {x['old_tiers_strangers_per_search']:.1f} |")
    return out + ["", "Rows past the crowd model's last measured point (z 5.5) extend its tail with the "
                      "slope of its last three points."]


def _event_tuning() -> list[str]:
    tune = load("event_scale_tune.json")
    if not (tune and tune.get("policy_sweep")):
        return []
    out = ["", "**Policy settings on the tuning half** (`--calibrate --half tune`; mean over three 1k, two "
               "5k and the all + WIDER event):", "",
           "| setting | strangers per search | recall per search | strangers, all + WIDER "
           "| recall, all + WIDER |",
           "|---|---|---|---|---|"]
    for row in tune["policy_sweep"]:
        out.append(f"| {row['policy']} | {row['strangers_mean']:.3f} | {row['recall_per_search']:.4f} | "
                   f"{row['strangers_largest_event']:.3f} | {row['recall_largest_event']:.4f} |")
    return out


def _event_far() -> list[str]:
    far = load("lfw_far.json")
    if not far:
        return []
    rates = ("0.001", "0.0001", "1e-05", "1e-06")
    return ["", f"**The embedder at low false-accept rates** (`benchmarks/bench_lfw_far.py`, {far['pack']}, "
                f"all {far['genuine_pairs']:,} same-person and {far['impostor_pairs']:,} different-person "
                "pairs of LFW's labelled faces):", "",
            "| FAR | 1e-3 | 1e-4 | 1e-5 | 1e-6 |", "|---|---|---|---|---|",
            "| TAR | " + " | ".join(pct(far[f"tar_at_far_{f}"]) for f in rates) + " |",
            "| cosine | " + " | ".join(f"{far[f'threshold_at_far_{f}']:.4f}" for f in rates) + " |"]


def render_event_scale() -> str:
    """The README's event-scale figures (benchmarks/bench_event_scale.py), report half only."""
    r = load("event_scale.json")
    if not r:
        return ""
    out = (_event_high_tier(r) + _event_maybe(r) + _event_mixed(r) + _event_similarity_and_refusals(r)
           + _event_extrapolation(r) + _event_tuning() + _event_far())
    out += ["", "![event scale](benchmarks/results/event_scale.png)"]
    return "\n".join(out)


def _replace_block(body: str, start: str, end: str, text: str, heading: str) -> str:
    block = f"{start}\n{text}\n{end}"
    if start in body:
        return body[: body.index(start)] + block + body[body.index(end) + len(end):]
    return body + f"\n{heading}\n\n" + block + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    text, reliability, event_scale = render(), render_reliability(), render_event_scale()
    if not args.write:
        print(text + "\n\n" + reliability + "\n\n" + event_scale)
        return
    readme = Path("README.md")
    body = _replace_block(readme.read_text(), START, END, text, "## Benchmark results")
    if reliability:
        body = _replace_block(body, REL_START, REL_END, reliability, "## Reliability figures")
    if event_scale:
        body = _replace_block(body, EVENT_START, EVENT_END, event_scale, "## Search at event scale: figures")
    readme.write_text(body)


if __name__ == "__main__":
    main()
