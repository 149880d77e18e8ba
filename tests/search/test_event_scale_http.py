"""Over HTTP, an event of 2,000+ real LFW faces: guests searching with a held-out photo get their own
photos in the high tier and no stranger; the capped "maybe" tier comes only when asked for.

Event photos are the central 160x200 crop of each LFW photo: LFW's full frames often show another
LFW person at the edge (Colin Powell stands beside Condoleezza Rice in one of hers), which would be a
true match over HTTP but a "stranger" by the folder's label.

The decision allows 0.05 strangers per search on average, not none: with Serena Williams as a guest,
one photo of her sister Venus reached the high tier in this event. Siblings are what remains; the
benchmark (benchmarks/bench_event_scale.py) counts every such case, this test guards a set of guests."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from pydantic import SecretStr
from support import need_shared
from support.servers import ADMIN_KEY, LiveServer, wait_job

from models.engine import FaceEngine
from picsort_local.settings import Settings
from search.decision import Policy

pytestmark = pytest.mark.slow

GUESTS = ["Colin_Powell", "Tony_Blair", "Donald_Rumsfeld", "Gerhard_Schroeder", "Ariel_Sharon", "Hugo_Chavez",
          "Junichiro_Koizumi", "Jean_Chretien", "John_Ashcroft", "Jacques_Chirac", "Laura_Bush",
          "Vladimir_Putin"]
IN_EVENT = 6  # photos 2..7 of each guest are in the event; photo 1 is the selfie
EVENT_PHOTOS = 2_100
BATCH = 200


@dataclass(frozen=True)
class BigEvent:
    """The indexed event the tests search, and where its photos came from."""

    event_id: str
    guest_token: str
    lfw: Path
    faces: int
    settings: Settings


@pytest.fixture(scope="module")
def big_event(tmp_path_factory: pytest.TempPathFactory, engine: FaceEngine) -> Iterator[tuple[LiveServer, BigEvent]]:
    from search.http.app import create_app
    from search.service import PicsortService

    lfw = need_shared("datasets", "lfw", "images")
    settings = Settings(data_dir=tmp_path_factory.mktemp("big-event"), admin_key=SecretStr(ADMIN_KEY),
                        ingest_bodies=False)  # no outfit pass here: the faces are what is tested
    guest_files = {g: [lfw / g / f"{g}_{i:04d}.jpg" for i in range(2, 2 + IN_EVENT)] for g in GUESTS}
    others = [p for p in sorted(lfw.glob("*/*.jpg")) if p.parent.name not in GUESTS]
    step = len(others) / (EVENT_PHOTOS - len(GUESTS) * IN_EVENT)
    strangers = [others[int(i * step)] for i in range(EVENT_PHOTOS - len(GUESTS) * IN_EVENT)]
    files = [p for g in GUESTS for p in guest_files[g]] + strangers
    with LiveServer(create_app(settings, service=PicsortService(settings, engine=engine))) as server, \
            httpx.Client(base_url=server.url, headers={"X-Admin-Key": ADMIN_KEY}, timeout=600) as host:
        event = host.post("/api/host/events", json={"name": "LFW crowd"}).json()
        jobs = []
        for start in range(0, len(files), BATCH):
            batch = files[start:start + BATCH]
            r = host.post(f"/api/host/events/{event['id']}/photos",
                          files=[("files", (f"{p.parent.name}__{p.name}", _central(p), "image/jpeg")) for p in batch])
            assert r.status_code == 202, r.text
            jobs.append(r.json()["job_id"])
        for job in jobs:
            assert wait_job(host, job, timeout=1200)["status"] == "done"
        summary = next(e for e in host.get("/api/host/events").json() if e["id"] == event["id"])
        yield server, BigEvent(event_id=event["id"], guest_token=event["guest_token"], lfw=lfw,
                               faces=int(summary["faces"]), settings=settings)


def _central(path: Path) -> bytes:
    buf = io.BytesIO()
    Image.open(path).convert("RGB").crop((45, 25, 205, 225)).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def _names(settings: Settings, event_id: str) -> dict[str, str]:
    from storage.metadata import Metadata

    meta = Metadata(settings.data_dir / "picsort.sqlite3")
    try:
        return {p.id: p.filename for p in meta.photos.list(event_id)}
    finally:
        meta.close()


def _search(server: LiveServer, token: str, selfie: Path, show_more: bool = False) -> dict[str, Any]:
    with httpx.Client(base_url=server.url, timeout=120) as anon:
        r = anon.post(f"/api/e/{token}/search", files={"selfie": ("me.jpg", selfie.read_bytes(), "image/jpeg")},
                      data={"show_more": "true" if show_more else "false"})
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_no_stranger_in_the_high_tier(big_event: tuple[LiveServer, BigEvent]) -> None:
    server, info = big_event
    assert info.faces >= 2_000
    names = _names(info.settings, info.event_id)
    found = total = 0
    for guest in GUESTS:
        body = _search(server, info.guest_token, info.lfw / guest / f"{guest}_0001.jpg")
        high = {names[h["photo_id"]] for h in body["results"] if h["tier"] == "high"}
        strangers = {n for n in high if not n.startswith(guest + "__")}
        assert not strangers, (guest, strangers)
        assert all(h["tier"] == "high" for h in body["results"])
        found += len(high)
        total += IN_EVENT
    assert found >= 0.9 * total, (found, total)


def test_maybe_tier_only_on_request_and_capped(big_event: tuple[LiveServer, BigEvent]) -> None:
    server, info = big_event
    token = info.guest_token
    selfie = info.lfw / GUESTS[0] / f"{GUESTS[0]}_0001.jpg"
    plain = _search(server, token, selfie)
    more = _search(server, token, selfie, show_more=True)
    low = [h for h in more["results"] if h["tier"] == "low"]
    policy = Policy()
    assert len(low) == plain["more"] and len(low) <= policy.group_max_photos + policy.maybe_max_photos
    assert more["more"] == 0
    sims = [h["similarity"] for h in more["results"] if h["tier"] == "high"]
    assert sims == sorted(sims, reverse=True) and all(80.0 <= s < 100.0 for s in sims)
