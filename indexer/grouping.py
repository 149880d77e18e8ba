"""Grouping faces into persons without any tagging: DBSCAN over cosine distance.

The neighbourhood graph comes from a FAISS range search (inner product >= 1 - eps on L2-normalised
vectors), handed to scikit-learn's DBSCAN as a sparse precomputed distance matrix: memory grows with
the number of close pairs, not with N^2, so a 25,000-photo event stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np
from scipy import sparse
from sklearn.cluster import DBSCAN

# Chosen on an LFW-derived event (benchmarks/bench_grouping.py; README "Grouping").
DEFAULT_EPS = 0.43
DEFAULT_MIN_SAMPLES = 2


@dataclass(frozen=True)
class Clustering:
    labels: np.ndarray  # (N,) person index per face, -1 = not assigned
    n_clusters: int


def neighbour_graph(embeddings: np.ndarray, eps: float) -> sparse.csr_matrix:
    n = embeddings.shape[0]
    index = faiss.IndexFlatIP(embeddings.shape[1])
    index.add(np.ascontiguousarray(embeddings, dtype=np.float32))
    lims, sims, ids = index.range_search(np.ascontiguousarray(embeddings, dtype=np.float32), 1.0 - eps)
    rows = np.repeat(np.arange(n), np.diff(lims.astype(np.int64)))
    dist = np.clip(1.0 - sims, 0.0, None)
    # DBSCAN treats stored zeros as "distance 0" neighbours, so exact duplicates stay neighbours.
    return sparse.csr_matrix((dist, (rows, ids)), shape=(n, n))


def _dbscan(embeddings: np.ndarray, eps: float, min_samples: int) -> np.ndarray:
    graph = neighbour_graph(embeddings, eps)
    return np.asarray(DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit_predict(graph), np.int64)


def _split_same_photo(embeddings: np.ndarray, labels: np.ndarray, photos: np.ndarray, eps: float,
                      min_samples: int) -> np.ndarray:
    """Cannot-link: one person appears at most once per photo. A cluster holding two faces of the
    same photo was chained through look-alikes; re-cluster it with a stricter eps until clean."""
    labels = labels.copy()
    next_label = int(labels.max()) + 1 if labels.size else 0
    for _ in range(6):
        valid = labels >= 0
        pairs = np.stack([labels[valid], photos[valid]], axis=1)
        uniq, counts = np.unique(pairs, axis=0, return_counts=True)
        bad = np.unique(uniq[counts > 1, 0])
        if bad.size == 0:
            break
        eps *= 0.85
        for label in bad:
            members = np.nonzero(labels == label)[0]
            sub = _dbscan(embeddings[members], eps, min_samples)
            labels[members] = np.where(sub >= 0, sub + next_label, -1)
            next_label += int(sub.max()) + 1 if (sub >= 0).any() else 0
    else:
        # still mixed after several rounds: keep one face per photo in each cluster, others noise
        valid_idx = np.nonzero(labels >= 0)[0]
        _, first = np.unique(np.stack([labels[valid_idx], photos[valid_idx]], axis=1), axis=0, return_index=True)
        keep = np.zeros(labels.size, bool)
        keep[valid_idx[first]] = True
        labels[(labels >= 0) & ~keep] = -1
    return labels


def cluster(embeddings: np.ndarray, eps: float = DEFAULT_EPS, min_samples: int = DEFAULT_MIN_SAMPLES,
            *, singletons: bool = True, photos: np.ndarray | None = None) -> Clustering:
    """Cluster L2-normalised embeddings. With `singletons`, faces DBSCAN calls noise become persons
    of their own (someone photographed once is still a person a guest may look for). `photos`
    (a photo key per face) enables the one-face-per-photo constraint."""
    n = embeddings.shape[0]
    if n == 0:
        return Clustering(np.zeros(0, np.int64), 0)
    labels = _dbscan(embeddings, eps, min_samples)
    if photos is not None:
        labels = _split_same_photo(embeddings, labels, np.asarray(photos), eps, min_samples)
        # compact label numbers
        valid = labels >= 0
        _, labels[valid] = np.unique(labels[valid], return_inverse=True)
    n_clusters = int(labels.max()) + 1 if (labels >= 0).any() else 0
    if singletons:
        noise = np.nonzero(labels < 0)[0]
        labels[noise] = np.arange(n_clusters, n_clusters + noise.size)
        n_clusters += noise.size
    return Clustering(labels, n_clusters)


def pairwise_scores(labels: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Pairwise precision/recall and BCubed precision/recall/F1 of a clustering against true ids."""
    # Pair counts from the contingency table, no O(N^2) loop.
    _, pred_idx = np.unique(labels, return_inverse=True)
    _, true_idx = np.unique(truth, return_inverse=True)
    table = sparse.coo_matrix((np.ones_like(pred_idx), (pred_idx, true_idx))).tocsr()
    pairs = lambda x: (x * (x - 1) / 2.0).sum()  # noqa: E731
    tp = pairs(table.data.astype(np.float64))
    pred_pairs = pairs(np.asarray(table.sum(axis=1)).ravel().astype(np.float64))
    true_pairs = pairs(np.asarray(table.sum(axis=0)).ravel().astype(np.float64))
    # BCubed: for each item, share of its cluster with its class and vice versa.
    cell = np.asarray(table[pred_idx, true_idx]).ravel().astype(np.float64)
    pred_size = np.asarray(table.sum(axis=1)).ravel()[pred_idx]
    true_size = np.asarray(table.sum(axis=0)).ravel()[true_idx]
    bp = float((cell / pred_size).mean())
    br = float((cell / true_size).mean())
    return {
        "pairwise_precision": float(tp / pred_pairs) if pred_pairs else 1.0,
        "pairwise_recall": float(tp / true_pairs) if true_pairs else 1.0,
        "bcubed_precision": bp,
        "bcubed_recall": br,
        "bcubed_f1": 2 * bp * br / (bp + br) if bp + br else 0.0,
    }
