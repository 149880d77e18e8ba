"""The guest kiosk page (search/static/kiosk.html) in a real browser: Debian's Chromium driven by
Playwright, against the real FastAPI app served by uvicorn on loopback.

The service behind the app is a fake with canned answers (no face models): the page is under test,
not the search. Without /usr/bin/chromium or the playwright package the tests skip locally and fail
in CI (scripts/test.sh installs Chromium when it runs as root). Never run `playwright install`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest
from support.images import gradient, jpeg_bytes
from support.servers import LiveServer

from picsort_local.errors import NotFoundError, SignatureError, TooManyFacesError
from picsort_local.settings import Settings
from search.metrics import Metrics
from search.services.guest import SearchHit, SearchOutcome
from storage.metadata import EventRow

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, FilePayload, Page, ViewportSize

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                 # a synthetic camera, granted without a prompt, for the getUserMedia path
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
PHONE: ViewportSize = {"width": 390, "height": 844}
TIMEOUT_MS = 20_000  # generous: two shared cores

TOKEN = "kiosk-token-0123456789abcdef"
GUEST = "guest-0123456789abcdef"
SELFIE_TOKEN = "selfie-token-0123456789abcdef"
EVENT_NAME = 'Gala <b>&</b> "Night"'  # must come back escaped: shown as text, never as markup


# ---- helpers shared by the tests below ------------------------------------------------------------
def need_browser() -> None:
    """Skip (locally) or fail (CI) unless both the playwright package and Debian's Chromium exist."""
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install -e '.[dev]')")
    if not Path(CHROMIUM).exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium; scripts/test.sh does it as root)")
    if missing:
        reason = "kiosk browser test needs " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail("in CI the browser test must run: " + reason)
        pytest.skip(reason)


def _hit(photo_id: str, tier: str, similarity: float, badge: str) -> SearchHit:
    def url(kind: str) -> str:
        return f"/files/events/ev1/{kind}/{photo_id}.jpg?exp=9999999999&sig=ok"

    return SearchHit(photo_id, tier, similarity, badge, url("preview"), url("thumb"))


# Deliberately not in display order: the page groups by tier (high first), keeping order within a tier.
HITS = [_hit("p4", "low", 61.0, "outfit"), _hit("p1", "high", 93.4, "face"),
        _hit("p3", "low", 55.2, "face"), _hit("p2", "high", 88.0, "face")]
SHOWN = [["p1", "high", "face"], ["p2", "high", "face"], ["p4", "low", "outfit"], ["p3", "low", "face"]]


class FakeService:
    """Exactly what the kiosk routes and the app's lifespan call, with canned answers and a record."""

    def __init__(self, image: bytes) -> None:
        self.event = EventRow(id="ev1", name=EVENT_NAME, created_at="2024-06-01T18:00:00+00:00",
                              token_hash="not-used", watermark=None)
        self.image = image
        self.lock = threading.Lock()
        self.closed = False
        # The app reaches the guest search, signed files and ingest jobs through these; one fake plays all.
        self.guest = self.files = self.jobs = self
        self.metrics = Metrics()
        self.reset()

    def reset(self) -> None:
        self.searches: list[dict[str, Any]] = []
        self.given_guest_ids: list[str | None] = []
        self.hides: list[tuple[str, str, str]] = []
        self.forgets: list[tuple[str | None, str | None]] = []
        self.hits: list[SearchHit] = list(HITS)
        self.withheld: list[SearchHit] = []  # the "maybe" tier, returned only with show_more
        self.show_more: list[bool] = []
        self.error: Exception | None = None

    def resume_pending(self) -> list[object]:  # called at start-up by the app's lifespan
        return []

    def event_for_token(self, token: str) -> EventRow:
        if token != TOKEN:
            raise NotFoundError("no event for that link")
        return self.event

    def guest_id(self, given: str | None) -> str:
        with self.lock:
            self.given_guest_ids.append(given)
        return given or GUEST

    def search(self, event: EventRow, data: bytes | None, *, guest_id: str, save_selfie: bool = False,
               selfie_token: str | None = None, limit: int = 500, show_more: bool = False) -> SearchOutcome:
        with self.lock:
            self.searches.append({"event": event.id, "data": data, "guest_id": guest_id, "save_selfie": save_selfie})
            self.show_more.append(show_more)
        if self.error is not None:
            raise self.error
        hits = list(self.hits) + (list(self.withheld) if show_more else [])
        return SearchOutcome(guest_id=guest_id, hits=hits, outfit="red",
                             selfie_token=SELFIE_TOKEN if save_selfie else None,
                             more=0 if show_more else len(self.withheld))

    def hide(self, event: EventRow, guest_id: str, photo_id: str) -> None:
        with self.lock:
            self.hides.append((event.id, guest_id, photo_id))

    def delete_guest_data(self, event: EventRow, guest_id: str | None, selfie_token: str | None) -> dict[str, bool]:
        with self.lock:
            self.forgets.append((guest_id, selfie_token))
        return {"preferences": guest_id is not None, "selfie": selfie_token is not None}

    def read_signed(self, key: str, expires: str, signature: str, holder: str = "") -> bytes:
        if signature != "ok":
            raise SignatureError("invalid or expired link")
        return self.image

    def close(self) -> None:
        self.closed = True


# ---- fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, FakeService]]:
    from search.http.app import create_app
    from search.service import PicsortService

    fake = FakeService(jpeg_bytes(gradient(64, 48)))
    settings = Settings(data_dir=tmp_path_factory.mktemp("kiosk-data"))
    with LiveServer(create_app(settings, service=cast(PicsortService, fake))) as server:
        yield server.url, fake
    assert fake.closed, "the app's lifespan must close the service on shutdown"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture()
def page(browser: Browser, kiosk: tuple[str, FakeService]) -> Iterator[Page]:
    """A fresh phone-sized context (empty localStorage) per test, with the fake's record cleared."""
    from playwright.sync_api import expect

    kiosk[1].reset()
    expect.set_options(timeout=TIMEOUT_MS)
    context: BrowserContext = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True,
                                                  has_touch=True, base_url=kiosk[0])
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def storage(page: Page, kind: str) -> str | None:
    return cast("str | None", page.evaluate("k => localStorage.getItem(k)", f"picsort:{kind}:{TOKEN}"))


# ---- tests --------------------------------------------------------------------------------------
def test_kiosk_search_hide_error_forget(page: Page, kiosk: tuple[str, FakeService]) -> None:
    from playwright.sync_api import expect

    fake = kiosk[1]
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    response = page.goto(f"/e/{TOKEN}")
    assert response is not None and response.status == 200
    assert response.headers["x-robots-tag"] == "noindex, nofollow"
    assert page.locator('meta[name="robots"]').get_attribute("content") == "noindex, nofollow"
    assert page.locator("h1").text_content() == EVENT_NAME  # escaped by the server, shown as text
    assert page.locator("h1 b").count() == 0
    assert not page.locator("#save-selfie").is_checked()
    expect(page.locator("#search-button")).to_be_disabled()
    expect(page.locator("#selected")).to_be_hidden()

    # pick a file and search
    selfie = jpeg_bytes(gradient(120, 160))
    picked: FilePayload = {"name": "me.jpg", "mimeType": "image/jpeg", "buffer": selfie}
    page.set_input_files("#file-input", files=[picked])
    expect(page.locator("#selected")).to_contain_text("me.jpg")
    page.click("#search-button")
    cards = page.locator("#results .result-card")
    expect(cards).to_have_count(4)
    shown = cards.evaluate_all("els => els.map(e => [e.dataset.photoId, e.dataset.tier, e.dataset.badge])")
    assert shown == SHOWN
    expect(page.locator("#results h2").nth(0)).to_contain_text("Best matches")
    expect(page.locator("#results h2").nth(1)).to_contain_text("Maybe you")
    p4 = page.locator('.result-card[data-photo-id="p4"]')
    expect(p4).to_contain_text("matched by outfit")
    expect(p4).to_contain_text("61%")
    expect(page.locator('.result-card[data-photo-id="p1"]')).to_contain_text("93%")
    assert page.locator("#status").text_content() == ""
    assert fake.searches == [{"event": "ev1", "data": selfie, "guest_id": GUEST, "save_selfie": False}]
    assert fake.given_guest_ids == [None]
    assert storage(page, "guest") == GUEST
    assert storage(page, "selfie") is None

    # thumbnails load through the signed-file route; the download link is the signed preview
    page.wait_for_function("() => { const i = document.querySelector('.result-card img');"
                           " return i && i.complete && i.naturalWidth > 0; }")
    download = page.locator('.result-card[data-photo-id="p1"] .download')
    assert download.get_attribute("href") == HITS[1].preview_url
    assert download.get_attribute("download") is not None

    # phone layout: nothing wider than the screen, touch targets at least 44 CSS px tall
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    for selector in ("#search-button", "#forget-button", ".thumbs-down >> nth=0", ".download >> nth=0"):
        box = page.locator(selector).bounding_box()
        assert box is not None and box["height"] >= 44, (selector, box)

    # thumbs-down hides the photo for this guest
    page.locator('.result-card[data-photo-id="p3"] .thumbs-down').click()
    expect(page.locator('.result-card[data-photo-id="p3"]')).to_have_count(0)
    expect(cards).to_have_count(3)
    assert fake.hides == [("ev1", GUEST, "p3")]

    # two faces: the service's message is shown in the alert; the stored guest id is sent back
    fake.error = TooManyFacesError(2)
    page.check("#save-selfie")
    page.click("#search-button")
    expect(page.locator("#status")).to_contain_text("2 faces of similar size near the centre: please retake")
    assert page.locator("#status").get_attribute("role") == "alert"
    expect(cards).to_have_count(0)
    assert fake.given_guest_ids[-1] == GUEST
    assert fake.searches[-1]["save_selfie"] is True

    # no match: empty state; the opted-in selfie's token is kept for "forget"
    fake.error = None
    fake.hits = []
    page.click("#search-button")
    expect(page.locator("#results .empty")).to_contain_text("No photos of you yet")
    assert page.locator("#status").text_content() == ""
    assert storage(page, "selfie") == SELFIE_TOKEN

    # forget: server-side deletion with both ids, then the device forgets too
    page.click("#forget-button")
    expect(page.locator("#notice")).to_contain_text("deleted")
    assert fake.forgets == [(GUEST, SELFIE_TOKEN)]
    assert storage(page, "guest") is None and storage(page, "selfie") is None
    assert not page.locator("#save-selfie").is_checked()

    # self-contained page: every request went to the app itself (or a local blob: preview)
    outside = [u for u in requested if not u.startswith((kiosk[0] + "/", "blob:", "data:"))]
    assert outside == [], outside


def test_show_more_asks_again_for_the_maybe_tier(page: Page, kiosk: tuple[str, FakeService]) -> None:
    """The "maybe" tier is withheld by the service; the page offers it behind an explicit button."""
    from playwright.sync_api import expect

    fake = kiosk[1]
    fake.hits = [HITS[1], HITS[3]]
    fake.withheld = [_hit("p7", "low", 52.0, "face"), _hit("p8", "low", 50.5, "face")]
    page.goto(f"/e/{TOKEN}")
    selfie = jpeg_bytes(gradient(120, 160))
    picked: FilePayload = {"name": "me.jpg", "mimeType": "image/jpeg", "buffer": selfie}
    page.set_input_files("#file-input", files=[picked])
    page.check("#save-selfie")
    page.click("#search-button")
    cards = page.locator("#results .result-card")
    expect(cards).to_have_count(2)
    expect(page.locator("#show-more")).to_contain_text("Show 2 less certain photos")
    page.click("#show-more")
    expect(cards).to_have_count(4)
    expect(page.locator('.result-card[data-photo-id="p7"]')).to_have_attribute("data-tier", "low")
    expect(page.locator("#show-more")).to_have_count(0)
    assert fake.show_more == [False, True]
    # asking for more repeats the search: the opted-in selfie is not stored a second time
    assert [s["save_selfie"] for s in fake.searches] == [True, False]
    assert [s["data"] for s in fake.searches] == [selfie, selfie]


def test_camera_capture_searches(page: Page, kiosk: tuple[str, FakeService]) -> None:
    """getUserMedia path with Chromium's synthetic camera: capture draws a frame and uploads a JPEG."""
    from playwright.sync_api import expect

    fake = kiosk[1]
    page.goto(f"/e/{TOKEN}")
    page.click("#camera-button")
    page.wait_for_function("() => document.getElementById('camera-video').videoWidth > 0")
    page.click("#capture-button")
    expect(page.locator("#results .result-card")).to_have_count(4)
    assert len(fake.searches) == 1
    data = fake.searches[0]["data"]
    assert data[:3] == b"\xff\xd8\xff", "the captured selfie must be uploaded as a JPEG"
    expect(page.locator("#camera")).to_be_hidden()  # camera released after capture


def test_unknown_link_is_404(page: Page) -> None:
    response = page.goto("/e/not-the-token")
    assert response is not None and response.status == 404
    assert response.json() == {"error": "not_found", "message": "not found"}


def test_kiosk_headers_lock_the_page_down(kiosk: tuple[str, FakeService]) -> None:
    """Strict CSP (this server only, the page's own inline code by hash, no framing), no caching of
    pages and answers that carry links, nosniff everywhere. The browser tests above run under it."""
    import httpx

    with httpx.Client(base_url=kiosk[0], timeout=30) as client:
        page = client.get(f"/e/{TOKEN}")
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert "'unsafe-inline'" not in csp and "script-src 'sha256-" in csp
        assert page.headers["cache-control"] == "no-store"
        found = client.post(f"/api/e/{TOKEN}/search",
                            files={"selfie": ("me.jpg", jpeg_bytes(gradient(64, 64)), "image/jpeg")})
        assert found.status_code == 200 and found.headers["cache-control"] == "no-store"
        for response in (page, found, client.get("/healthz")):
            assert response.headers["x-content-type-options"] == "nosniff"
