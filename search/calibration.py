"""Measured crowd models per model pack (see `search.decision.CrowdModel`).

Each table is the share of stranger faces whose crowd-normalised score z reaches each z, measured
by `python benchmarks/bench_event_scale.py --calibrate --half tune` (its output:
benchmarks/results/event_scale_tune.json, "calibration") on the *tuning* half of LFW's
people (those whose name's SHA-256 starts with an even byte) searched in the all-LFW event (13,233
faces, 12.1M stranger pairs); the figures in the README come from the other half. Packs without a table use
the default pack's, with a warning: the normalisation makes scores of different embedders comparable, but not
identical.
"""

from __future__ import annotations

import logging

from search.decision import CrowdModel

logger = logging.getLogger(__name__)

DEFAULT_PACK = "pypi-small"

# from benchmarks/results/event_scale_tune.json ("calibration"); the tail slope is that of the last 3 points
CROWD_MODELS: dict[str, CrowdModel] = {
    "pypi-small": CrowdModel(
        pack="pypi-small",
        z=(2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5),
        log10_share=(-1.6378, -2.1938, -2.8287, -3.527, -4.2584, -4.9963, -5.5944, -5.9276),
        prior_mean=0.1035,
        prior_spread=0.0848,
    ),
}


def crowd_model(pack: str) -> CrowdModel:
    model = CROWD_MODELS.get(pack)
    if model is None:
        logger.warning("no crowd model measured for pack %r: using %s's", pack, DEFAULT_PACK)
        model = CROWD_MODELS[DEFAULT_PACK]
    return model
