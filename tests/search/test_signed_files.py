"""Signed links: a photo's original is linked for one guest's grant and the grant is checked again at
download; other files (previews, thumbnails) need only a valid, unexpired signature."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from picsort_local.errors import NotFoundError, SignatureError
from search.services.files import SignedFiles
from search.signing import UrlSigner
from storage.blobs import LocalBlobStore
from storage.keys import photo_key
from storage.metadata import Metadata

EVENT = "ev00000000000001"
GUEST, OTHER = "guest-aaaaaaaaaaaaaaaa", "guest-bbbbbbbbbbbbbbbb"


@pytest.fixture
def files(tmp_path: Path) -> Iterator[tuple[SignedFiles, Metadata]]:
    meta = Metadata(tmp_path / "meta.sqlite3")
    blobs = LocalBlobStore(tmp_path / "blobs")
    meta.events.create(EVENT, "Event", "hash", None)
    meta.photos.add("p1", EVENT, "sha", "p1.jpg", original_key=photo_key(EVENT, "p1", "originals"))
    blobs.put(photo_key(EVENT, "p1", "originals"), b"original bytes")
    blobs.put(photo_key(EVENT, "p1", "preview"), b"preview bytes")
    try:
        yield SignedFiles(UrlSigner(b"k" * 32), blobs, meta.guests), meta
    finally:
        meta.close()


def _read(files: SignedFiles, url: str) -> bytes:
    path, _, query = url.partition("?")
    params = dict(part.split("=", 1) for part in query.split("&"))
    return files.read_signed(path.removeprefix("/files/"), params["exp"], params["sig"], params.get("h", ""))


def test_an_original_downloads_only_while_its_grant_stands(files: tuple[SignedFiles, Metadata]) -> None:
    signed, meta = files
    meta.guests.grant(EVENT, GUEST, "p1")
    url = signed.original_url(photo_key(EVENT, "p1", "originals"), GUEST)
    assert GUEST not in url and _read(signed, url) == b"original bytes"
    meta.guests.forget(EVENT, GUEST)  # the guest asks to be forgotten: grants go
    with pytest.raises(NotFoundError):
        _read(signed, url)


def test_an_original_link_is_bound_to_its_holder(files: tuple[SignedFiles, Metadata]) -> None:
    signed, meta = files
    meta.guests.grant(EVENT, GUEST, "p1")
    meta.guests.grant(EVENT, OTHER, "p1")
    url = signed.original_url(photo_key(EVENT, "p1", "originals"), GUEST)
    other = signed.original_url(photo_key(EVENT, "p1", "originals"), OTHER)
    swapped = url.split("&h=")[0] + "&h=" + other.split("&h=")[1]
    with pytest.raises(SignatureError):
        _read(signed, swapped)  # another holder under this signature
    with pytest.raises(NotFoundError):
        _read(signed, signed.url(photo_key(EVENT, "p1", "originals")))  # no holder: no grant to check


def test_previews_need_only_a_valid_signature(files: tuple[SignedFiles, Metadata]) -> None:
    signed, _ = files
    url = signed.url(photo_key(EVENT, "p1", "preview"))
    assert _read(signed, url) == b"preview bytes"
    with pytest.raises(SignatureError):
        _read(signed, url.replace("sig=", "sig=0"))
