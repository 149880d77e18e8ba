"""The interactive API docs load Swagger UI and ReDoc from a CDN: off unless asked for
(`PICSORT_API_DOCS=true`), while the OpenAPI schema is always served."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from picsort_local.settings import Settings
from search.http.app import create_app


def _paths(settings: Settings) -> set[str]:
    return {getattr(route, "path", "") for route in create_app(settings).routes}


def test_docs_are_off_by_default_and_the_schema_stays(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    paths = _paths(settings)
    assert "/docs" not in paths and "/redoc" not in paths and "/openapi.json" in paths
    # Without a lifespan run: only the app's own routing and middleware answer.
    client = TestClient(create_app(settings))
    for path in ("/docs", "/redoc"):
        response = client.get(path)
        assert response.status_code == 404 and b"cdn" not in response.content.lower()
    assert client.get("/openapi.json").json()["info"]["title"] == "Picsort Local"


def test_docs_can_be_turned_on(tmp_path: Path) -> None:
    paths = _paths(Settings(data_dir=tmp_path, api_docs=True))
    assert {"/docs", "/redoc", "/openapi.json"} <= paths
