"""Throughput pipeline: decode photos in threads while inference workers analyse batches.

onnxruntime releases the GIL while it runs, so inference workers in threads share one session per
model and use separate cores; decoding (libjpeg, also GIL-free) overlaps with both.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from models.engine import FaceEngine, PhotoFaces
from picsort_local.errors import PicsortError
from picsort_local.images import DecodedImage

logger = logging.getLogger(__name__)

K = TypeVar("K")


@dataclass(frozen=True)
class PipelineResult(Generic[K]):
    key: K
    image: DecodedImage | None = field(repr=False)
    faces: PhotoFaces | None = field(repr=False)
    error: PicsortError | None = None
    extra: Any = field(default=None, repr=False)  # what `postprocess` returned


def analyze_stream(
    engine: FaceEngine,
    items: Iterable[tuple[K, Callable[[], bytes]]],
    *,
    workers: int = 1,
    chunk: int = 8,
    decode_threads: int = 2,
    reduced: bool = True,
    postprocess: Callable[[DecodedImage, PhotoFaces], Any] | None = None,
) -> Iterator[PipelineResult[K]]:
    """Yield one result per item (in completion order). `items` are (key, read-bytes callable).

    `postprocess(image, faces)` runs in the worker threads too (per-photo CPU work such as derived
    images), so it is spread over the cores instead of serialising in the consumer.
    A bad photo yields a result with `error` set; the stream carries on."""
    stream: _Stream[K] = _Stream(engine, workers=workers, chunk=chunk, reduced=reduced, postprocess=postprocess)
    threads = [threading.Thread(target=stream.produce, args=(items, decode_threads), daemon=True)]
    threads += [threading.Thread(target=stream.work, daemon=True) for _ in range(workers)]
    for t in threads:
        t.start()
    yield from stream.results()
    for t in threads:
        t.join()


class _Stream(Generic[K]):
    """The queues of one `analyze_stream` call: a producer thread decodes into `decoded` (bounded, so
    decoding stays a few batches ahead), `workers` threads analyse batches into `out`; each worker ends
    `out` with a None, and an exception in any thread is put on `out` to be raised in the consumer."""

    def __init__(self, engine: FaceEngine, *, workers: int, chunk: int, reduced: bool,
                 postprocess: Callable[[DecodedImage, PhotoFaces], Any] | None) -> None:
        self.engine = engine
        self.workers = workers
        self.chunk = chunk
        self.reduced = reduced
        self.postprocess = postprocess
        self.decoded: queue.Queue[PipelineResult[K] | None] = queue.Queue(maxsize=chunk * workers * 2)
        self.out: queue.Queue[PipelineResult[K] | BaseException | None] = queue.Queue()

    def decode(self, item: tuple[K, Callable[[], bytes]]) -> PipelineResult[K]:
        key, read = item
        try:
            return PipelineResult(key, self.engine.decode(read(), reduced=self.reduced), None)
        except PicsortError as exc:
            return PipelineResult(key, None, None, exc)
        except OSError as exc:
            return PipelineResult(key, None, None, PicsortError(f"cannot read: {exc}"))

    def produce(self, items: Iterable[tuple[K, Callable[[], bytes]]], decode_threads: int) -> None:
        try:
            with ThreadPoolExecutor(max_workers=decode_threads) as pool:
                for result in pool.map(self.decode, items):
                    self.decoded.put(result)
        except BaseException as exc:  # surface in the consumer instead of dying silently
            self.out.put(exc)
        finally:
            for _ in range(self.workers):
                self.decoded.put(None)

    def work(self) -> None:
        try:
            done = False
            while not done:
                batch, done = self._next_batch()
                if batch:
                    self._analyse(batch)
        except BaseException as exc:
            self.out.put(exc)
        finally:
            self.out.put(None)

    def _next_batch(self) -> tuple[list[PipelineResult[K]], bool]:
        """Up to `chunk` decoded photos (a photo that failed to decode goes straight out), and whether
        the producer is done."""
        batch: list[PipelineResult[K]] = []
        while len(batch) < self.chunk:
            got = self.decoded.get()
            if got is None:
                return batch, True
            if got.error is not None:
                self.out.put(got)
            else:
                batch.append(got)
        return batch, False

    def _analyse(self, batch: list[PipelineResult[K]]) -> None:
        analyses = self.engine.analyze_many([b.image for b in batch if b.image is not None])
        for item, faces in zip(batch, analyses, strict=True):  # a decoded photo always has its image
            self.out.put(self._finish(item, faces))

    def _finish(self, item: PipelineResult[K], faces: PhotoFaces) -> PipelineResult[K]:
        extra = None
        if self.postprocess is not None and item.image is not None:
            try:
                extra = self.postprocess(item.image, faces)
            except PicsortError as exc:
                return PipelineResult(item.key, None, None, exc)
        return PipelineResult(item.key, item.image, faces, extra=extra)

    def results(self) -> Iterator[PipelineResult[K]]:
        finished = 0
        while finished < self.workers:
            got = self.out.get()
            if got is None:
                finished += 1
            elif isinstance(got, BaseException):
                raise got
            else:
                yield got
