"""FastAPI dependencies: the service, settings and metrics on `app.state`; the admin key; the guest's
event."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from picsort_local.errors import AuthError, NotFoundError
from picsort_local.settings import ServiceSettings
from search.metrics import Metrics
from search.service import PicsortService
from storage.metadata import EventRow

MAX_TOKEN_LENGTH = 128  # link tokens are 32 characters: a longer one is refused before any lookup


def get_service(request: Request) -> PicsortService:
    service: PicsortService = request.app.state.service
    return service


def get_settings(request: Request) -> ServiceSettings:
    """The service group of the app's settings (all the picsort routes read)."""
    settings: ServiceSettings = request.app.state.settings.service
    return settings


def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


ServiceDep = Annotated[PicsortService, Depends(get_service)]
SettingsDep = Annotated[ServiceSettings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


def require_admin(service: ServiceDep, x_admin_key: Annotated[str | None, Header()] = None) -> None:
    if not service.host.check_admin_key(x_admin_key):
        raise AuthError("a valid X-Admin-Key header is required")


AdminDep = Annotated[None, Depends(require_admin)]


def guest_event(token: str, service: ServiceDep) -> EventRow:
    if len(token) > MAX_TOKEN_LENGTH:
        raise NotFoundError("not found")
    return service.guest.event_for_token(token)


GuestEventDep = Annotated[EventRow, Depends(guest_event)]
