"""Which face is "the" face of a selfie: known answers on boxes."""

from __future__ import annotations

import numpy as np

from picsort_local.main_face import choose_main_face

W, H = 1000, 1200


def box(cx: float, cy: float, size: float) -> list[float]:
    return [cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2]


def test_no_face() -> None:
    choice = choose_main_face(np.zeros((0, 4)), W, H)
    assert choice.index is None and not choice.ambiguous


def test_single_face() -> None:
    assert choose_main_face(np.array([box(500, 600, 400)]), W, H).index == 0


def test_central_face_wins_over_a_neighbour_at_the_edge() -> None:
    boxes = np.array([box(950, 500, 380), box(500, 600, 400)])  # neighbour cut by the right edge
    choice = choose_main_face(boxes, W, H)
    assert choice.index == 1 and not choice.ambiguous


def test_heads_behind_do_not_compete() -> None:
    boxes = np.array([box(500, 600, 420), box(300, 300, 200), box(700, 250, 180)])
    choice = choose_main_face(boxes, W, H)
    assert choice.index == 0 and not choice.ambiguous


def test_large_face_off_centre_beats_small_central_face() -> None:
    boxes = np.array([box(500, 600, 150), box(650, 600, 450)])
    assert choose_main_face(boxes, W, H).index == 1


def test_two_comparable_faces_near_the_centre_are_ambiguous() -> None:
    boxes = np.array([box(380, 600, 300), box(640, 600, 290)])
    choice = choose_main_face(boxes, W, H)
    assert choice.ambiguous and {choice.index, *choice.rivals} == {0, 1}
