"""Every page works with the network cut off except Voxline itself, at a phone's width too, and
its text meets WCAG AA contrast."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from playwright.async_api import expect

from tests.web.conftest import screenshot, sign_up, simulated_call
from tests.web.test_dashboard import TRUNK, create_agent

PHONE = {"width": 390, "height": 844}

# Elements whose text is below WCAG AA contrast on its background (a function for page.evaluate).
LOW_CONTRAST = "\n".join(
    line
    for line in (Path(__file__).parent / "low_contrast.js").read_text().splitlines()
    if not line.startswith("//")
)


async def _world(page, api, scripted_llm) -> dict[str, str]:
    """A signed-in user with an agent, a finished call and a batch: every page has content."""
    await sign_up(page)
    assert (await page.request.post("/phonenumbers/sip_trunk", data=TRUNK)).status == 201
    agent_id = await create_agent(page, scripted_llm)
    call_id = await simulated_call(api, agent_id)
    batch = await page.request.post(
        "/batch/upload",
        multipart={
            "name": "Offline check",
            "agent_id": agent_id,
            "agent_phone_number": TRUNK["phone_number"],
            "scheduled_time": "2099-01-01T09:00:00Z",  # never dials during the test
            "file": {
                "name": "leads.csv",
                "mimeType": "text/csv",
                "buffer": b"phone_number\n+14155550001\n",
            },
        },
    )
    assert batch.status == 201, await batch.text()
    ids = {"agent": agent_id, "call": call_id, "batch": (await batch.json())["id"]}
    if (await page.request.get("/api/v/options/")).status == 200:  # the campaigns API is here
        campaign = await page.request.post(
            "/api/v/campaign/",
            data={
                "name": "Offline check",
                "agent_id": agent_id,
                "agent_phone_number": TRUNK["phone_number"],
                "active": False,
            },
        )
        assert campaign.status == 201, await campaign.text()
        ids["campaign"] = (await campaign.json())["slug"]
    return ids


def _pages(ids: dict[str, str]) -> list[str]:
    pages = [
        "/app/agents",
        f"/app/agents/{ids['agent']}",
        "/app/chat",
        "/app/calls",
        f"/app/calls/{ids['call']}",
        "/app/batches",
        f"/app/batches/{ids['batch']}",
        "/app/reports",
        "/app/numbers",
        "/app/workspace",
        "/app/api-keys",
        "/app/webhooks",
    ]
    if "campaign" in ids:
        pages += ["/app/campaigns", f"/app/campaign?slug={ids['campaign']}"]
    return pages


async def test_every_page_loads_with_only_the_server_reachable(
    context, page, api, scripted_llm, dashboard_server
):
    ids = await _world(page, api, scripted_llm)
    server = urlsplit(dashboard_server).netloc
    left: list[str] = []
    failed_assets: list[str] = []

    async def only_the_server(route):
        url = urlsplit(route.request.url)
        if url.scheme in ("http", "https", "ws", "wss") and url.netloc != server:
            left.append(route.request.url)
            await route.abort()
        else:
            await route.continue_()

    await context.route("**/*", only_the_server)
    page.on(
        "response",
        lambda response: (
            failed_assets.append(response.url)
            if "/app/static/" in response.url and response.status >= 400
            else None
        ),
    )
    await page.goto("/")  # the front page is the dashboard
    await page.wait_for_url("**/app/agents")
    for path in _pages(ids):
        await page.goto(path)
        await page.wait_for_load_state("networkidle")
        await expect(page.get_by_role("heading", level=1)).to_be_visible()
        errors = page.locator("#status[data-kind=error]")
        assert await errors.count() == 0, f"{path}: {await errors.inner_text()}"
        assert await page.evaluate(LOW_CONTRAST) == [], path
    await page.goto("/docs")
    await expect(page.get_by_text("Voxline API").first).to_be_visible()
    await expect(page.get_by_text("/agents").first).to_be_visible()
    await screenshot(page, "docs")

    # A scheduled batch can be paused and resumed, and cancelled.
    await page.goto(f"/app/batches/{ids['batch']}")
    await page.get_by_role("button", name="Pause").click()
    await expect(page.get_by_role("status")).to_have_text(re.compile("^Paused"))
    await expect(page.get_by_role("button", name="Pause")).to_be_hidden()
    await page.get_by_role("button", name="Resume").click()
    await expect(page.get_by_role("status")).to_have_text("Resumed.")
    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Cancel the batch").click()
    await expect(page.get_by_role("status")).to_have_text("Cancelled.")
    await expect(page.get_by_role("table", name="Numbers by status")).to_contain_text("cancelled")
    for path in ("/app/login", "/app/signup", "/app/forgot-password", "/app/reset-password"):
        await page.goto(path)
        await page.wait_for_load_state("networkidle")
        assert await page.evaluate(LOW_CONTRAST) == [], path

    assert left == [], f"requests left the server: {left}"
    assert failed_assets == [], f"assets the server could not serve: {failed_assets}"


async def test_the_pages_fit_a_phone(browser, dashboard_server, db, livekit, api, scripted_llm):
    context = await browser.new_context(base_url=dashboard_server, viewport=PHONE)
    try:
        page = await context.new_page()
        ids = await _world(page, api, scripted_llm)
        for name, path in (
            ("phone-agents", "/app/agents"),
            ("phone-call", f"/app/calls/{ids['call']}"),
            ("phone-batch", f"/app/batches/{ids['batch']}"),
        ):
            await page.goto(path)
            await page.wait_for_load_state("networkidle")
            await expect(page.get_by_role("link", name="Calls", exact=True)).to_be_in_viewport()
            await expect(page.get_by_role("button", name="Log out")).to_be_in_viewport()
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"{path} is {width}px wide: it scrolls sideways"
            await screenshot(page, name)
    finally:
        await context.close()
