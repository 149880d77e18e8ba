"""End to end over HTTP on loopback with the real models: a gallery assembled from LFW photos
(solo shots and group composites), guest selfie search, tiers, privacy and deletion.

Every test passes alone and in any order: the shared `gallery` is only read (a test that changes an
event makes its own, like the deletion test's `doomed_gallery`)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from support import need_shared, scan_for
from support.servers import ADMIN_KEY, LiveServer, wait_job

from picsort_local.settings import Settings

GUESTS = ["Colin_Powell", "Tony_Blair", "Donald_Rumsfeld", "Gerhard_Schroeder"]
STRANGERS = ["Jacques_Chirac", "Vladimir_Putin", "Junichiro_Koizumi", "John_Ashcroft", "Jean_Chretien",
             "Hugo_Chavez", "Serena_Williams", "Ariel_Sharon"]
Live = tuple[LiveServer, Settings]  # the `live` fixture: the server and its settings


def _jpeg(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def _load(lfw: Path, person: str, i: int) -> np.ndarray:
    return np.asarray(Image.open(lfw / person / f"{person}_{i:04d}.jpg").convert("RGB"))


def _selfie(lfw: Path, person: str, i: int = 1) -> bytes:
    """A selfie-like framing of a held-out LFW photo: the central crop, enlarged."""
    crop = Image.fromarray(_load(lfw, person, i)[25:225, 45:205])
    return _jpeg(np.asarray(crop.resize((480, 600), Image.Resampling.BICUBIC)))


def _group(*faces: np.ndarray) -> np.ndarray:
    """Side-by-side group composite of central crops (one face each)."""
    return np.concatenate([f[25:225, 45:205] for f in faces], axis=1)


@dataclass(frozen=True)
class Gallery:
    """An indexed LFW event: what a guest needs to search it, and which photos each guest is in."""

    event_id: str
    guest_token: str
    expected: dict[str, set[str]]  # guest -> the filenames of their photos
    lfw: Path
    names: list[str]  # every uploaded file, the broken one too


def build_gallery(url: str, name: str) -> Gallery:
    """A new event holding the LFW gallery, fully indexed: the guests' solo photos, strangers, two group
    composites and a broken file."""
    lfw = need_shared("datasets", "lfw", "images")
    files: list[tuple[str, bytes]] = []
    expected: dict[str, set[str]] = {g: set() for g in GUESTS}
    for g in GUESTS:
        for i in (2, 3, 4, 5):
            name = f"{g}_{i}.jpg"
            files.append((name, _jpeg(_load(lfw, g, i))))
            expected[g].add(name)
    for s in STRANGERS:
        files.append((f"stranger_{s}.jpg", _jpeg(_load(lfw, s, 1))))
    # group composites: two guests with a stranger, and a strangers-only group
    files.append(("group_a.jpg",
                  _jpeg(_group(_load(lfw, GUESTS[0], 6), _load(lfw, STRANGERS[0], 2), _load(lfw, GUESTS[1], 6)))))
    expected[GUESTS[0]].add("group_a.jpg")
    expected[GUESTS[1]].add("group_a.jpg")
    files.append(("group_b.jpg",
                  _jpeg(_group(_load(lfw, STRANGERS[1], 2), _load(lfw, STRANGERS[2], 2), _load(lfw, STRANGERS[3], 2)))))
    # A broken file: a JPEG cut after its header is accepted at upload (the header is sound), then failed by
    # the job (a file that is not an image at all is refused at upload: tests/search/test_bad_inputs.py).
    files.append(("not_a_photo.jpg", _jpeg(_load(lfw, STRANGERS[1], 2))[:1500]))

    with httpx.Client(base_url=url, headers={"X-Admin-Key": ADMIN_KEY}, timeout=300) as host:
        created = host.post("/api/host/events", json={"name": name, "watermark": "LFW gala"}).json()
        upload = host.post(f"/api/host/events/{created['id']}/photos",
                           files=[("files", (n, d, "image/jpeg")) for n, d in files])
        assert upload.status_code == 202, upload.text
        body = upload.json()
        assert [r["status"] for r in body["results"]].count("accepted") == len(files)
        job = wait_job(host, body["job_id"])
        assert job["status"] == "done" and job["failed"] == 1, job
    return Gallery(event_id=created["id"], guest_token=created["guest_token"], expected=expected, lfw=lfw,
                   names=[n for n, _ in files])


@pytest.fixture(scope="module")
def gallery(live: tuple[LiveServer, Settings]) -> Gallery:
    """The gallery the read-only tests share (no test may change it)."""
    return build_gallery(live[0].url, "LFW gala")


@pytest.fixture()
def doomed_gallery(live: tuple[LiveServer, Settings]) -> Gallery:
    """A gallery of the test's own, for a test that deletes from it."""
    return build_gallery(live[0].url, "LFW gala (to delete)")


def _photo_names(live, event_id: str) -> dict[str, str]:
    from storage.metadata import Metadata

    meta = Metadata(live[1].data_dir / "picsort.sqlite3")
    try:
        return {p.id: p.filename for p in meta.photos.list(event_id)}
    finally:
        meta.close()


@pytest.mark.parametrize("guest", GUESTS)
def test_selfie_finds_all_their_photos_in_high_tier(live: Live, anon: httpx.Client, gallery: Gallery,
                                                    guest: str) -> None:
    token = gallery.guest_token
    selfie = _selfie(gallery.lfw, guest)  # held out: never uploaded
    r = anon.post(f"/api/e/{token}/search", files={"selfie": ("me.jpg", selfie, "image/jpeg")})
    assert r.status_code == 200, r.text
    assert r.headers["x-robots-tag"] == "noindex, nofollow"
    names = _photo_names(live, gallery.event_id)
    results = r.json()["results"]
    high = {names[h["photo_id"]] for h in results if h["tier"] == "high" and h["badge"] == "face"}
    assert gallery.expected[guest] <= high, (guest, high)
    assert high <= gallery.expected[guest], f"stranger in the high tier: {high - gallery.expected[guest]}"
    sims = [h["similarity"] for h in results if h["tier"] == "high"]
    assert sims == sorted(sims, reverse=True) and all(80 <= s <= 100 for s in sims)
    # one entry per photo
    assert len({h["photo_id"] for h in results}) == len(results)
    # signed preview URLs work, and a tampered one does not
    url = results[0]["preview_url"]
    assert anon.get(url).headers["content-type"] == "image/jpeg"
    assert anon.get(url.replace("sig=", "sig=0")).status_code == 403


def test_selfie_face_count(anon: httpx.Client, gallery: Gallery) -> None:
    token = gallery.guest_token
    lfw = gallery.lfw
    two = _jpeg(_group(_load(lfw, GUESTS[0], 1), _load(lfw, GUESTS[1], 1)))
    r = anon.post(f"/api/e/{token}/search", files={"selfie": ("two.jpg", two, "image/jpeg")})
    assert r.status_code == 422 and r.json()["faces"] == 2 and "retake" in r.json()["message"]
    blank = _jpeg(np.full((400, 300, 3), 120, np.uint8))
    r = anon.post(f"/api/e/{token}/search", files={"selfie": ("none.jpg", blank, "image/jpeg")})
    assert r.status_code == 422 and r.json()["error"] == "no_face"
    r = anon.post(f"/api/e/{token}/search", files={"selfie": ("x.jpg", b"plain text", "image/jpeg")})
    assert r.status_code == 415


def test_unknown_token_and_missing_admin_key(anon: httpx.Client, gallery: Gallery) -> None:
    r1 = anon.post("/api/e/not-a-real-token/search", files={"selfie": ("a.jpg", b"x", "image/jpeg")})
    r2 = anon.get("/e/not-a-real-token")
    assert r1.status_code == r2.status_code == 404
    assert r1.json() == {"error": "not_found", "message": "not found"}
    assert anon.get("/api/host/events").status_code == 401
    assert anon.get("/api/host/events", headers={"X-Admin-Key": ADMIN_KEY + "x"}).status_code == 401
    assert anon.get("/robots.txt").text == "User-agent: *\nDisallow: /\n"


def test_privacy_no_selfie_kept_and_forget(live: Live, host: httpx.Client, anon: httpx.Client,
                                           gallery: Gallery) -> None:
    token = gallery.guest_token
    selfie = _selfie(gallery.lfw, GUESTS[2])
    r = anon.post(f"/api/e/{token}/search", files={"selfie": ("me.jpg", selfie, "image/jpeg")})
    assert r.status_code == 200 and "selfie_token" not in r.json()
    assert scan_for(live[1].data_dir, selfie[-300:-236]) == []  # not written anywhere

    # opt in: kept, reusable in this event without a new selfie, then deleted
    r = anon.post(f"/api/e/{token}/search", files={"selfie": ("me.jpg", selfie, "image/jpeg")},
                  data={"save_selfie": "true"})
    kept = r.json()
    assert kept["selfie_token"] and scan_for(live[1].data_dir, selfie[-300:-236])
    again = anon.post(f"/api/e/{token}/search-saved", json={"selfie_token": kept["selfie_token"]})
    assert {h["photo_id"] for h in again.json()["results"]} == {h["photo_id"] for h in kept["results"]}
    # ... but only in this event: the token is no identifier that works, or can be deleted, elsewhere
    other = host.post("/api/host/events", json={"name": "Another party"}).json()
    elsewhere = anon.post(f"/api/e/{other['guest_token']}/search-saved", json={"selfie_token": kept["selfie_token"]})
    assert elsewhere.status_code == 404
    not_there = anon.post(f"/api/e/{other['guest_token']}/forget", json={"selfie_token": kept["selfie_token"]})
    assert not_there.json() == {"preferences": False, "selfie": False}
    assert host.delete(f"/api/host/events/{other['id']}").status_code == 204
    gone = anon.post(f"/api/e/{token}/forget",
                     json={"guest_id": kept["guest_id"], "selfie_token": kept["selfie_token"]})
    assert gone.json() == {"preferences": True, "selfie": True}
    assert scan_for(live[1].data_dir, selfie[-300:-236]) == []
    assert anon.post(f"/api/e/{token}/search-saved", json={"selfie_token": kept["selfie_token"]}).status_code == 404


def test_thumbs_down_hides_for_this_guest_only(anon: httpx.Client, gallery: Gallery) -> None:
    token = gallery.guest_token
    selfie = _selfie(gallery.lfw, GUESTS[3])
    first = anon.post(f"/api/e/{token}/search", files={"selfie": ("me.jpg", selfie, "image/jpeg")}).json()
    victim = first["results"][0]["photo_id"]
    ok = anon.post(f"/api/e/{token}/feedback", json={"guest_id": first["guest_id"], "photo_id": victim, "vote": "down"})
    assert ok.status_code == 200
    mine = anon.post(f"/api/e/{token}/search", files={"selfie": ("me.jpg", selfie, "image/jpeg")},
                     headers={"X-Guest-Id": first["guest_id"]}).json()
    assert victim not in {h["photo_id"] for h in mine["results"]}
    other = anon.post(f"/api/e/{token}/search", files={"selfie": ("me.jpg", selfie, "image/jpeg")}).json()
    assert victim in {h["photo_id"] for h in other["results"]}


def test_ops_endpoints(anon: httpx.Client, host: httpx.Client, gallery: Gallery) -> None:
    assert anon.get("/healthz").json() == {"status": "ok"}
    assert anon.get("/readyz").status_code == 200
    metrics = anon.get("/metrics").text
    assert "picsort_requests_total" in metrics and "picsort_searches_total" in metrics
    assert "/api/host/events" in anon.get("/openapi.json").text
    people = host.get(f"/api/host/events/{gallery.event_id}/people").json()
    assert sum(1 for p in people if p["photo_count"] >= 4) >= len(GUESTS)


def test_person_photos(live: Live, host: httpx.Client, anon: httpx.Client, gallery: Gallery) -> None:
    """Each person is a set of photos: the host gets every photo of one person, with signed links."""
    event_id = gallery.event_id
    names = _photo_names(live, event_id)
    people = host.get(f"/api/host/events/{event_id}/people").json()
    sets: dict[int, set[str]] = {}
    for person in people:
        r = host.get(f"/api/host/events/{event_id}/people/{person['id']}/photos")
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["event_id"], body["person_id"]) == (event_id, person["id"])
        ids = [p["photo_id"] for p in body["photos"]]
        assert len(ids) == len(set(ids)) == person["photo_count"], (person, ids)
        assert all(names[p["photo_id"]] == p["filename"] for p in body["photos"])
        sets[person["id"]] = {p["filename"] for p in body["photos"]}
    # every photo with a face is in some person's set; each guest is one person with their photos
    assert set().union(*sets.values()) == set(gallery.names) - {"not_a_photo.jpg"}
    for guest in GUESTS:
        assert max(len(s & gallery.expected[guest]) for s in sets.values()) >= 4, guest
    # the links are signed like search results: they work, a tampered one does not
    photo = r.json()["photos"][0]
    for url in (photo["preview_url"], photo["thumb_url"]):
        assert anon.get(url).headers["content-type"] == "image/jpeg"
        assert anon.get(url.replace("sig=", "sig=0")).status_code == 403
    # a person of another event, an unknown person or event: 404; no admin key: 401
    other = host.post("/api/host/events", json={"name": "Not the gala"}).json()
    try:
        for path in (f"/api/host/events/{other['id']}/people/{people[0]['id']}/photos",
                     f"/api/host/events/{event_id}/people/987654321/photos",
                     f"/api/host/events/{'0' * 16}/people/{people[0]['id']}/photos"):
            assert host.get(path).status_code == 404, path
    finally:
        assert host.delete(f"/api/host/events/{other['id']}").status_code == 204
    assert anon.get(f"/api/host/events/{event_id}/people/{people[0]['id']}/photos").status_code == 401


def test_delete_photo_then_event(live: Live, host: httpx.Client, anon: httpx.Client, doomed_gallery: Gallery) -> None:
    gallery = doomed_gallery
    event_id = gallery.event_id
    names = _photo_names(live, event_id)
    victim = next(pid for pid, n in names.items() if n == f"{GUESTS[0]}_2.jpg")
    assert host.delete(f"/api/host/events/{event_id}/photos/{victim}").json()["faces_removed"] >= 1
    token = gallery.guest_token
    selfie = _selfie(gallery.lfw, GUESTS[0])
    after = anon.post(f"/api/e/{token}/search", files={"selfie": ("me.jpg", selfie, "image/jpeg")}).json()
    assert victim not in {h["photo_id"] for h in after["results"]}
    assert host.delete(f"/api/host/events/{event_id}").status_code == 204
    assert anon.post(f"/api/e/{token}/search", files={"selfie": ("me.jpg", selfie, "image/jpeg")}).status_code == 404
    assert not [p for p in (live[1].data_dir / "blobs").rglob("*") if event_id in str(p) and p.is_file()]


def test_search_keeps_working_during_ingest_and_sees_new_snapshots(live: Live, host: httpx.Client,
                                                                    anon: httpx.Client) -> None:
    lfw = need_shared("datasets", "lfw", "images")
    event = host.post("/api/host/events", json={"name": "Busy night"}).json()
    token = event["guest_token"]
    guest = "Jennifer_Capriati"
    first = host.post(f"/api/host/events/{event['id']}/photos",
                      files=[("files", ("a.jpg", _jpeg(_load(lfw, guest, 2)), "image/jpeg"))]).json()
    wait_job(host, first["job_id"])
    selfie = _selfie(lfw, guest)
    people = sorted(p.name for p in lfw.iterdir() if p.is_dir())[:24]
    batch = [("files", (f"{p}.jpg", _jpeg(_load(lfw, p, 1)), "image/jpeg")) for p in people]
    batch.append(("files", ("b.jpg", _jpeg(_load(lfw, guest, 3)), "image/jpeg")))
    job = host.post(f"/api/host/events/{event['id']}/photos", files=batch).json()
    codes = []
    while True:  # at least one search, however fast the ingest
        search = anon.post(f"/api/e/{token}/search", files={"selfie": ("me.jpg", selfie, "image/jpeg")})
        codes.append(search.status_code)
        if host.get(f"/api/host/jobs/{job['job_id']}").json()["status"] in ("done", "error"):
            break
    assert set(codes) == {200}, codes  # searches answered while the ingest ran
    after = anon.post(f"/api/e/{token}/search", files={"selfie": ("me.jpg", selfie, "image/jpeg")}).json()
    names = _photo_names(live, event["id"])
    assert {"a.jpg", "b.jpg"} <= {names[h["photo_id"]] for h in after["results"] if h["tier"] == "high"}
