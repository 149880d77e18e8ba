"""The outfit second pass, constructed from real WIDER group photos:
- the guest (a person in a real couple photo) is found by face in that photo;
- the same photo with the guest's face blurred away (as if turned away) is found with the `outfit`
  badge, through the HOG body and the outfit colour learned from the guest's own face match;
- a different person, face visible, recoloured to the guest's outfit, is not returned."""

from __future__ import annotations

import io

import cv2
import httpx
import numpy as np
from PIL import Image
from support import need_shared
from support.servers import ADMIN_KEY, LiveServer, wait_job

from models.engine import FaceEngine
from picsort_local.settings import Settings

GUEST_PHOTO = "19--Couple/19_Couple_Couple_19_319.jpg"  # one person, face ~47 px, dark suit
STRANGER_PHOTO = "13--Interview/13_Interview_Interview_Sequences_13_868.jpg"  # one person, face visible


def _jpeg(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def test_outfit_pass(live: tuple[LiveServer, Settings], engine: FaceEngine) -> None:
    from indexer.outfit import outfit_colours, to_lab

    wider = need_shared("datasets", "wider_val", "images")
    guest_img = engine.decode((wider / GUEST_PHOTO).read_bytes(), reduced=False)
    guest_faces = engine.detect(guest_img)
    assert len(guest_faces) == 1
    x1, y1, x2, y2 = guest_faces.boxes[0].astype(int)
    h = y2 - y1
    # selfie: the guest's face, enlarged
    crop = guest_img.pixels[max(0, y1 - h // 2) : y2 + h // 2, max(0, x1 - h // 2) : x2 + h // 2]
    selfie = _jpeg(cv2.resize(crop, (crop.shape[1] * 5, crop.shape[0] * 5), interpolation=cv2.INTER_CUBIC))
    # the same photo, face blurred away
    turned = guest_img.pixels.copy()
    m = int(0.15 * h)
    region = turned[max(0, y1 - m) : y2 + m, max(0, x1 - m) : x2 + m]
    turned[max(0, y1 - m) : y2 + m, max(0, x1 - m) : x2 + m] = cv2.GaussianBlur(region, (0, 0), 25)
    # a stranger whose torso is recoloured to the guest's outfit
    outfit = outfit_colours(guest_img.pixels, guest_faces.boxes[:1])[0]
    assert outfit is not None
    stranger = engine.decode((wider / STRANGER_PHOTO).read_bytes(), reduced=False)
    s_faces = engine.detect(stranger)
    assert len(s_faces) >= 1
    sx1, sy1, sx2, sy2 = s_faces.boxes[0].astype(int)
    sh = sy2 - sy1
    lab8 = np.array([[[outfit.lab[0] * 255 / 100, outfit.lab[1] + 128, outfit.lab[2] + 128]]], np.uint8)
    rgb = cv2.cvtColor(lab8, cv2.COLOR_LAB2RGB)[0, 0]
    recoloured = stranger.pixels.copy()
    recoloured[sy2 + sh // 3 : min(recoloured.shape[0], sy2 + 5 * sh), max(0, sx1 - 2 * sh) : sx2 + 2 * sh] = rgb
    assert np.linalg.norm(to_lab(rgb[None, None])[0, 0] - np.array(outfit.lab)) < 3

    files = [("guest.jpg", _jpeg(guest_img.pixels)), ("turned_away.jpg", _jpeg(turned)),
             ("stranger_same_colour.jpg", _jpeg(recoloured))]
    with httpx.Client(base_url=live[0].url, headers={"X-Admin-Key": ADMIN_KEY}, timeout=300) as host:
        event = host.post("/api/host/events", json={"name": "Outfit test"}).json()
        job = host.post(f"/api/host/events/{event['id']}/photos",
                        files=[("files", (n, d, "image/jpeg")) for n, d in files]).json()
        assert wait_job(host, job["job_id"])["status"] == "done"
        result = host.post(f"/api/e/{event['guest_token']}/search",
                           files={"selfie": ("me.jpg", selfie, "image/jpeg")}).json()

    from storage.metadata import Metadata

    meta = Metadata(live[1].data_dir / "picsort.sqlite3")
    names = {p.id: p.filename for p in meta.photos.list(event["id"])}
    meta.close()
    got = {names[h["photo_id"]]: h for h in result["results"]}
    assert got["guest.jpg"]["tier"] == "high" and got["guest.jpg"]["badge"] == "face"
    assert got["turned_away.jpg"]["badge"] == "outfit", result
    assert "stranger_same_colour.jpg" not in got, result
    assert result["outfit"] == outfit.name
