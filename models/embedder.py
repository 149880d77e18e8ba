"""Face embedder for ArcFace-style 112x112 aligned crops (SFace, ArcFace R50, MobileFaceNet)."""

from __future__ import annotations

import numpy as np

from models.runtime import InferenceSession


class FaceEmbedder:
    def __init__(
        self,
        session: InferenceSession,
        *,
        mean: float,
        std: float,
        bgr: bool = False,
        batch_size: int = 32,
    ) -> None:
        self.session = session
        self.mean = float(mean)
        self.std = float(std)
        self.bgr = bgr
        self.batch_size = batch_size
        self.input_name = session.get_inputs()[0].name
        self.output_name = session.get_outputs()[0].name
        shape = session.get_outputs()[0].shape
        self.dim = int(shape[-1]) if isinstance(shape[-1], int) else None

    def _blob(self, crops: np.ndarray) -> np.ndarray:
        batch = crops.astype(np.float32)
        if self.bgr:
            batch = batch[..., ::-1]
        if self.mean:
            batch -= self.mean
        if self.std != 1.0:
            batch /= self.std
        return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))

    def _raw(self, crops: np.ndarray) -> np.ndarray:
        outs = []
        for start in range(0, crops.shape[0], self.batch_size):
            chunk = crops[start : start + self.batch_size]
            emb = self.session.run([self.output_name], {self.input_name: self._blob(chunk)})[0]
            outs.append(emb.reshape(emb.shape[0], -1))
        return np.concatenate(outs).astype(np.float32)

    @staticmethod
    def _normalise(vectors: np.ndarray) -> np.ndarray:
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def embed(self, crops: np.ndarray, *, flip: bool = False) -> np.ndarray:
        """(N,112,112,3) RGB uint8 aligned crops -> (N,D) L2-normalised float32, in batches.

        `flip=True` adds the embedding of the mirrored crop (test-time augmentation)."""
        if crops.shape[0] == 0:
            return np.zeros((0, self.dim or 0), np.float32)
        if flip:
            return self.embed_with_flip(crops)[1]
        return self._normalise(self._raw(crops))

    def embed_with_flip(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Both variants from one pass each over the crops and their mirror images."""
        if crops.shape[0] == 0:
            empty = np.zeros((0, self.dim or 0), np.float32)
            return empty, empty
        plain = self._raw(crops)
        mirrored = self._raw(np.ascontiguousarray(crops[:, :, ::-1]))
        return self._normalise(plain), self._normalise(plain + mirrored)
