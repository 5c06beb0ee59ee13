"""The agent page's Versions section in Chromium: a draft and its banner, a diff, publish,
restore, an A/B split, and the report page comparing the split's versions."""

from __future__ import annotations

import re

from playwright.async_api import expect

from tests.web.conftest import screenshot, sign_up, simulated_call


async def test_a_draft_is_compared_published_restored_and_split(page, api, scripted_llm):
    await sign_up(page)
    await page.get_by_label("Agent name", exact=True).fill("Harbor Cafe")
    await page.get_by_role("button", name="Create agent").click()
    await expect(page.get_by_role("heading", name="Harbor Cafe")).to_be_visible()
    agent_id = page.url.rstrip("/").split("/")[-1]
    versions = page.get_by_role("table", name="Versions")
    await expect(versions.get_by_role("row").nth(1)).to_contain_text("published")
    banner = page.get_by_role("region", name="Draft")
    await expect(banner).to_be_hidden()

    section = page.locator("#versions")
    await section.get_by_label("Publish each save at once").uncheck()
    await section.get_by_role("button", name="Save version settings").click()
    await expect(page.get_by_role("status")).to_have_text("Saved the version settings.")

    await page.get_by_label("System prompt", exact=True).fill("You are the host of Harbor Cafe.")
    await page.get_by_label("Note for this version").fill("a friendlier host")
    await page.get_by_role("button", name="Save agent").click()
    await expect(page.get_by_role("status")).to_have_text("Saved.")
    await expect(banner).to_contain_text(
        "Draft: the latest version (2) is not published; calls run version 1."
    )
    newest = versions.get_by_role("row").nth(1)
    await expect(newest).to_contain_text("draft")
    await expect(newest).to_contain_text("a friendlier host")
    await expect(newest).to_contain_text("ada@example.com")

    await section.get_by_label("From version").select_option("1")
    await section.get_by_label("To version").select_option("2")
    await section.get_by_role("button", name="Compare").click()
    diff = page.get_by_role("table", name="Changes from version 1 to version 2")
    await expect(diff.get_by_role("row")).to_have_count(2)  # the heading and the prompt
    await expect(diff).to_contain_text("system_prompt")
    await expect(diff).to_contain_text("You are the host of Harbor Cafe.")
    await screenshot(page, "agent-versions")

    await banner.get_by_role("button", name="Publish the latest version").click()
    await expect(page.get_by_role("status")).to_have_text(
        "Version 2 is published: new calls run it."
    )
    await expect(banner).to_be_hidden()

    page.on("dialog", lambda dialog: dialog.accept())
    await versions.get_by_role("button", name="Restore version 1").click()
    await expect(page.get_by_role("status")).to_have_text(
        "Restored version 1 as version 3, a draft: publish it to make calls run it."
    )
    await expect(page.get_by_label("System prompt", exact=True)).to_have_value("")
    await expect(banner).to_contain_text("calls run version 2")

    for version, weight in (("1", "80"), ("2", "20")):
        await section.get_by_role("button", name="Add a version to the split").click()
        await section.get_by_label("Version", exact=True).last.select_option(version)
        await section.get_by_label("Share of new calls (%)").last.fill(weight)
    await section.get_by_role("button", name="Save the split").click()
    await expect(page.get_by_role("status")).to_have_text(
        "New calls are split: version 1 80%, version 2 20%."
    )
    await expect(versions.get_by_role("row", name=re.compile(r"^1 "))).to_contain_text(
        "80% of new calls"
    )

    for _ in range(3):
        await simulated_call(api, agent_id)
    counts = []
    for version in (1, 2):
        listed = await page.request.get(f"/calls?agent_id={agent_id}&agent_version={version}")
        counts.append((await listed.json())["total"])
    assert sum(counts) == 3

    await section.get_by_role("link", name="Compare the versions' results in Reports").click()
    await page.wait_for_url("**/app/reports?agent_id=*")
    compared = page.get_by_role("table", name="Versions of Harbor Cafe side by side")
    await expect(compared.get_by_role("row").first).to_contain_text("Version 1")
    await expect(compared.get_by_role("row").first).to_contain_text("Version 2")
    share = compared.get_by_role("row", name=re.compile("^Share of new calls"))
    await expect(share).to_have_text(re.compile(r"Share of new calls\s*80%\s*20%"))
    calls = compared.get_by_role("row", name=re.compile(r"^Calls \d"))
    await expect(calls).to_have_text(re.compile(rf"Calls\s*{counts[0]}\s*{counts[1]}"))
    await screenshot(page, "reports-versions")
