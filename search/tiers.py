"""The per-pair 0-100 similarity scale, for comparing two faces without an event (CompareFaces).

Searches in an event do not use it: a per-pair false-accept rate lets strangers grow with the event.
They use `search.decision` (crowd-normalised, thresholds from the event size).

Calibrated per model pack on LFW (`picsort eval lfw`, all 6,000 pairs, plain embeddings):
- high tier: cosine >= the threshold at which 0.1% of different-person pairs are accepted
  (false-positive rate 1e-3, well under the 1% asked for);
- low tier ("maybe you"): cosine >= the threshold at 1% of different-person pairs.
Packs without a calibration use the settings' fallbacks.

Similarity (0-100) is a documented piecewise-linear map of cosine, monotone, anchored so that the
tier boundaries land on round numbers: cosine <= 0 -> 0, low threshold -> 50, high threshold -> 80,
cosine >= high + 0.3 -> 100. So "80" means "high confidence" for every pack, which is also what
Rekognition users expect from FaceMatchThreshold's default of 80.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# cosine thresholds measured with benchmarks/results/lfw_<pack>.json (threshold_at_far)
CALIBRATION: dict[str, tuple[float, float]] = {
    # pack: (low = FAR 1e-2, high = FAR 1e-3), from benchmarks/results/lfw_pypi-small.json ("plain");
    # at these thresholds LFW's true-accept rates are 99.60% and 99.03%.
    "pypi-small": (0.2986, 0.3684),
}


@dataclass(frozen=True)
class Tiers:
    low: float
    high: float

    def similarity(self, cosine: np.ndarray) -> np.ndarray:
        xs = [0.0, self.low, self.high, self.high + 0.3]
        ys = [0.0, 50.0, 80.0, 100.0]
        return np.interp(np.asarray(cosine, np.float64), xs, ys).astype(np.float32)

    def cosine_for(self, similarity: float) -> float:
        """Inverse map (for thresholds given on the 0-100 scale, e.g. FaceMatchThreshold)."""
        return float(np.interp(similarity, [0.0, 50.0, 80.0, 100.0], [0.0, self.low, self.high, self.high + 0.3]))


def tiers_for(pack: str, fallback_low: float, fallback_high: float) -> Tiers:
    low, high = CALIBRATION.get(pack, (fallback_low, fallback_high))
    return Tiers(low=low, high=high)
