"""The agent page's Tests section in Chromium: a case written as form rows, run, and its run page
with the failed expectation first and the transcript."""

from __future__ import annotations

import re

from playwright.async_api import expect

from tests.web.conftest import screenshot, sign_up


async def test_a_case_is_written_run_and_read_on_its_run_page(page, scripted_llm):
    scripted_llm.on("opening hours", "We are open 9 to 5 every day.")
    await sign_up(page)
    await page.get_by_label("Agent name", exact=True).fill("Harbor Cafe")
    await page.get_by_role("button", name="Create agent").click()
    await expect(page.get_by_role("heading", name="Harbor Cafe")).to_be_visible()
    await page.get_by_label("Custom base URL", exact=True).fill(scripted_llm.base_url)
    await page.get_by_label("Model", exact=True).fill("scripted")
    await page.get_by_role("button", name="Save agent").click()
    await expect(page.get_by_role("status")).to_have_text("Saved.")

    tests = page.locator("#tests")
    await expect(tests.get_by_text("No test cases yet")).to_be_visible()
    await tests.get_by_label("Case name").fill("hours")
    await tests.get_by_label("The caller says").fill("What are your opening hours?")
    line = tests.get_by_role("group", name="Caller line")
    for expectation, value in (("reply_contains", "9 to 5"), ("reply_contains", "midnight")):
        await line.get_by_role("button", name="Add an expectation").click()
        await line.get_by_label("Expect").last.select_option(expectation)
        await line.get_by_label("Value").last.fill(value)
    await tests.get_by_role("button", name="Save test case").click()
    await expect(page.get_by_role("status")).to_have_text("Saved the test case hours.")
    cases = page.get_by_role("table", name="Test cases")
    await expect(cases.get_by_role("row", name=re.compile("hours"))).to_contain_text("scripted")

    await tests.get_by_role("button", name="Run the tests").click()
    runs = page.get_by_role("table", name="Test runs")
    await expect(runs.get_by_role("row").nth(1)).to_contain_text("failed", timeout=60_000)
    await expect(runs.get_by_role("row").nth(1)).to_contain_text("0 of 1")
    await screenshot(page, "agent-tests")

    await runs.get_by_role("link").first.click()
    await page.wait_for_url("**/app/test-runs/*")
    expectations = page.get_by_role("table", name="Expectations of attempt 1")
    first = expectations.get_by_role("row").nth(1)
    await expect(first).to_contain_text("failed")  # the failed expectation comes first
    await expect(first).to_contain_text("midnight")
    conversation = page.get_by_role("list", name="Transcript of attempt 1")
    await expect(conversation).to_contain_text("Caller: What are your opening hours?")
    await expect(conversation).to_contain_text("Agent: We are open 9 to 5 every day.")
    await screenshot(page, "test-run")
