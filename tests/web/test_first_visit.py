"""A first visit lands on the login page; "session ended" is said only to whom it is true."""

from __future__ import annotations

import re

from playwright.async_api import expect

from tests.web.conftest import PASSWORD, sign_up

SESSION_ENDED = "Your session has ended; log in again."


def _pages_loaded(page) -> list[str]:
    """The paths of every page (document) the browser loads from now on, redirects included."""
    loaded: list[str] = []
    page.on(
        "request",
        lambda request: (
            loaded.append(re.sub(r"^https?://[^/]+", "", request.url))
            if request.resource_type == "document"
            else None
        ),
    )
    return loaded


async def test_a_visitor_with_no_session_goes_straight_to_the_login_page(page):
    loaded = _pages_loaded(page)
    response = await page.goto("/")
    assert response is not None and response.status == 200
    assert re.search(r"/app/login$", response.url), response.url
    # The server redirected: no signed-in page was rendered, so none said the session ended.
    assert not any(path.startswith("/app/agents") for path in loaded), loaded
    await expect(page.get_by_role("button", name="Log in")).to_be_enabled()
    await expect(page.locator("#status")).to_have_text("")  # the page's script has run

    # A signed-in page opened directly comes back to it after logging in.
    response = await page.goto("/app/calls?page=2")
    assert response is not None
    assert "/app/login?next=%2Fapp%2Fcalls%3Fpage%3D2" in response.url, response.url
    await expect(page.get_by_role("button", name="Log in")).to_be_enabled()
    await expect(page.locator("#status")).to_have_text("")


async def test_someone_whose_session_ended_is_told_so_on_the_login_page(context, page, api):
    await sign_up(page)
    await page.goto("/")  # with a session, the front page is the dashboard
    await page.wait_for_url("**/app/agents")

    # The session ends: its refresh token is spent elsewhere and the access token has expired.
    cookies = {cookie["name"]: cookie["value"] for cookie in await context.cookies()}
    spent = await api.post("/auth/refresh", json={"refresh_token": cookies["refresh_token"]})
    assert spent.status_code == 200, spent.text
    await context.clear_cookies(name="access_token")

    await page.goto("/app/agents")
    await page.wait_for_url(re.compile(r"/app/login\?next=%2Fapp%2Fagents&session=ended$"))
    await expect(page.locator("#status")).to_have_text(SESSION_ENDED)
    await page.get_by_label("Email").fill("ada@example.com")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url("**/app/agents")
    await expect(page.get_by_role("button", name="Log out")).to_be_visible()
