"""The HTTP app (`app.create_app`): routers per area, schemas, dependencies, the one error mapping and
the metrics. Nothing is imported here, so importing a submodule does not build the whole app."""
