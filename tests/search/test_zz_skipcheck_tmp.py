import test_kiosk_browser as t
t.CHROMIUM = "/nonexistent/chromium"
def test_x(): t.need_browser()
