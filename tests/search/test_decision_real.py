"""The decision on real embeddings (LFW faces through the engine): guests among 500 strangers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from support import need_shared

from indexer.vector_index import EventIndex
from models.engine import FaceEngine
from models.lfw import embed_images
from search.calibration import crowd_model
from search.decision import Policy, decide

GUESTS = ["Colin_Powell", "Tony_Blair", "Donald_Rumsfeld", "Gerhard_Schroeder", "Ariel_Sharon", "Hugo_Chavez",
          "Jean_Chretien", "John_Ashcroft", "Jacques_Chirac", "Vladimir_Putin"]


def _strangers(root: Path, count: int) -> list[str]:
    people = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in GUESTS)
    return [f"{name}/{name}_0001.jpg" for name in people[:: max(1, len(people) // count)][:count]]


def test_guests_among_real_strangers(engine: FaceEngine) -> None:
    root = need_shared("datasets", "lfw", "images")
    event_names = [f"{g}/{g}_{i:04d}.jpg" for g in GUESTS for i in range(2, 6)] + _strangers(root, 500)
    selfie_names = [f"{g}/{g}_0001.jpg" for g in GUESTS]
    vectors, _, _ = embed_images(engine, root, event_names + selfie_names)
    event, selfies = vectors[: len(event_names)], vectors[len(event_names):]
    index = EventIndex(event.shape[1])
    index.add(np.arange(len(event), dtype=np.int64), np.ascontiguousarray(event))
    model, policy = crowd_model(engine.pack_name), Policy()
    found = 0
    for g, (guest, selfie) in enumerate(zip(GUESTS, selfies, strict=True)):
        m = decide(index, selfie, model, policy)
        high = set(m.face_ids[m.z >= m.thresholds.high].tolist())
        own = set(range(4 * g, 4 * g + 4))
        assert high <= own, (guest, sorted(event_names[i] for i in high - own))
        found += len(high)
        sims = m.similarity()[m.z >= m.thresholds.high]
        assert np.all((sims >= 80.0) & (sims < 100.0))
    assert found >= 0.9 * 4 * len(GUESTS), found
