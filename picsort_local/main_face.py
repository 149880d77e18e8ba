"""Which face of a photo is "the" face: the one a person would point at in a selfie or a portrait.

A face counts as a candidate when it is at least `MIN_RELATIVE_HEIGHT` of the largest face's height
(strangers far behind do not compete). Among candidates, prominence = relative height minus
`CENTRE_WEIGHT` x distance of the face's centre from the photo's centre (0 at the centre, 1 at a
corner); the most prominent is the main face. The choice is ambiguous only when another candidate
is genuinely comparable: at least `RIVAL_HEIGHT` of the main face's height, inside the frame (not cut
by its edge), and within `RIVAL_MARGIN` of its prominence. Thresholds were chosen on the tuning half
of LFW (benchmarks/bench_event_scale.py reports the refusal rate on the other half).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_RELATIVE_HEIGHT = 0.5
CENTRE_WEIGHT = 1.0
RIVAL_HEIGHT = 0.75
RIVAL_MARGIN = 0.2
SELFIE_MIN_SHARE = 0.08  # a selfie's own face is at least this share of the photo's short side
EDGE_CUT = 0.1  # a face whose box leaves the frame by more than this share of its width is cut


@dataclass(frozen=True)
class MainFace:
    index: int | None  # the chosen face; None when there is no face
    rivals: tuple[int, ...] = ()  # faces comparable to it: the choice is ambiguous when non-empty

    @property
    def ambiguous(self) -> bool:
        return bool(self.rivals)


def choose_main_face(boxes: np.ndarray, width: int, height: int) -> MainFace:
    """`boxes`: (n, 4) x1 y1 x2 y2 in the photo's pixels."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return MainFace(None)
    heights = boxes[:, 3] - boxes[:, 1]
    widths = boxes[:, 2] - boxes[:, 0]
    relative = heights / max(float(heights.max()), 1e-9)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2.0
    half_diagonal = 0.5 * float(np.hypot(width, height)) or 1.0
    distance = np.linalg.norm(centres - np.array([width / 2.0, height / 2.0]), axis=1) / half_diagonal
    prominence = np.where(relative >= MIN_RELATIVE_HEIGHT, relative - CENTRE_WEIGHT * distance, -np.inf)
    main = int(np.argmax(prominence))
    outside = np.maximum.reduce([-boxes[:, 0], -boxes[:, 1], boxes[:, 2] - width, boxes[:, 3] - height,
                                 np.zeros(len(boxes))])
    inside = outside <= EDGE_CUT * np.maximum(widths, 1e-9)
    rival = ((heights >= RIVAL_HEIGHT * heights[main]) & inside
             & (prominence >= prominence[main] - RIVAL_MARGIN))
    rival[main] = False
    return MainFace(main, tuple(int(i) for i in np.nonzero(rival)[0]))
