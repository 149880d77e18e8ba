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
    decoded_q: queue.Queue[PipelineResult[K] | None] = queue.Queue(maxsize=chunk * workers * 2)
    out_q: queue.Queue[PipelineResult[K] | BaseException | None] = queue.Queue()

    def decode(item: tuple[K, Callable[[], bytes]]) -> PipelineResult[K]:
        key, read = item
        try:
            return PipelineResult(key, engine.decode(read(), reduced=reduced), None)
        except PicsortError as exc:
            return PipelineResult(key, None, None, exc)
        except OSError as exc:
            return PipelineResult(key, None, None, PicsortError(f"cannot read: {exc}"))

    def producer() -> None:
        try:
            with ThreadPoolExecutor(max_workers=decode_threads) as pool:
                for result in pool.map(decode, items):
                    decoded_q.put(result)
        except BaseException as exc:  # surface in the consumer instead of dying silently
            out_q.put(exc)
        finally:
            for _ in range(workers):
                decoded_q.put(None)

    def worker() -> None:
        try:
            done = False
            while not done:
                batch: list[PipelineResult[K]] = []
                while len(batch) < chunk:
                    got = decoded_q.get()
                    if got is None:
                        done = True
                        break
                    if got.error is not None:
                        out_q.put(got)
                    else:
                        batch.append(got)
                if batch:
                    analyses = engine.analyze_many([b.image for b in batch if b.image is not None])
                    for item, faces in zip(batch, analyses):
                        extra = None
                        if postprocess is not None and item.image is not None:
                            try:
                                extra = postprocess(item.image, faces)
                            except PicsortError as exc:
                                out_q.put(PipelineResult(item.key, None, None, exc))
                                continue
                        out_q.put(PipelineResult(item.key, item.image, faces, extra=extra))
        except BaseException as exc:
            out_q.put(exc)
        finally:
            out_q.put(None)

    threads = [threading.Thread(target=producer, daemon=True)]
    threads += [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    for t in threads:
        t.start()
    finished = 0
    while finished < workers:
        got = out_q.get()
        if got is None:
            finished += 1
        elif isinstance(got, BaseException):
            raise got
        else:
            yield got
    for t in threads:
        t.join()
