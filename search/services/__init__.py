"""The services of one process, built once by the composition root (the app's lifespan or the CLI):
the host's operations, the ingest jobs, the guest's search and signed files, over one engine, one
catalog (metadata, blobs, face store), one search decision and one set of metrics."""
