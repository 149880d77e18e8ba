"""`PicsortService`: every service of one process, built once from the settings (the app's lifespan,
the CLI and the benchmarks build it; tests pass a shared engine). It owns the engine, the catalog
(metadata, blobs and the face store), the one search decision shared with the Rekognition API, the
signed-URL key and the metrics; the HTTP routers reach the service of their area through it."""

from __future__ import annotations

import logging
from dataclasses import replace

from indexer.events import Catalog
from models.engine import FaceEngine
from models.runtime import plan_parallelism
from picsort_local.settings import Settings
from search.calibration import crowd_model
from search.decision import FaceSearch, Policy
from search.metrics import Metrics
from search.services.files import SignedFiles
from search.services.guest import GuestService, SearchHit, SearchOutcome
from search.services.host import HostService
from search.services.jobs import IngestJobs, JobState
from search.signing import UrlSigner, load_or_create_secret
from search.tiers import Tiers, tiers_for

logger = logging.getLogger(__name__)


class PicsortService:
    def __init__(self, settings: Settings, engine: FaceEngine | None = None, catalog: Catalog | None = None,
                 metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.catalog = catalog or Catalog(settings.storage)
        workers, threads = plan_parallelism(settings.engine, settings.ingest)
        self.engine = engine or FaceEngine.from_settings(replace(settings.engine, threads=threads))
        self.metrics = metrics or Metrics()
        service = settings.service
        # CompareFaces' per-pair scale; searches in an event use the decision below.
        self.tiers: Tiers = tiers_for(self.engine.pack_name, service.search_low_threshold,
                                      service.search_high_threshold)
        self.face_search = FaceSearch(self.catalog.faces, self.engine.embedder.dim or 128,
                                      crowd_model(self.engine.pack_name), Policy())
        signer = UrlSigner(load_or_create_secret(settings.storage.data_dir / "url-signing.key"),
                           service.signed_url_ttl_s)
        self.files = SignedFiles(signer, self.catalog.blobs, self.catalog.meta.guests)
        self.host = HostService(self.catalog, self.files, service.admin_key)
        self.jobs = IngestJobs(self.catalog, self.engine, self.metrics, settings.ingest, workers=workers,
                               max_upload_bytes=service.max_upload_bytes)
        self.guest = GuestService(self.catalog, self.engine, self.face_search, self.files, self.metrics,
                                  min_face_px=settings.engine.min_face_px, concurrency=service.search_concurrency)

    def close(self) -> None:
        self.jobs.close()
        self.catalog.meta.close()


__all__ = ["JobState", "PicsortService", "SearchHit", "SearchOutcome"]
