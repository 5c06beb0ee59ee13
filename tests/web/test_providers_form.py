"""The agent form reads the provider catalogue (GET /providers) in Chromium: providers without
credentials are marked until the workspace has a key."""

from __future__ import annotations

from playwright.async_api import expect

from tests.web.conftest import sign_up


async def test_the_agent_form_marks_providers_without_credentials(page, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    await sign_up(page)
    llm = page.get_by_label("Language model provider")
    anthropic = llm.locator("option[value=anthropic]")
    await expect(anthropic).to_have_text("Anthropic (no key yet)")
    await expect(llm.locator("option[value=local]")).to_have_text("Local (llama.cpp)")

    workspaces = await (await page.request.get("/workspaces")).json()
    workspace_id = workspaces["items"][0]["id"]
    response = await page.request.put(
        f"/workspaces/{workspace_id}/providers/anthropic", data={"api_key": "sk-ant-1234567890"}
    )
    assert response.status == 200, await response.text()
    await page.reload()

    await expect(anthropic).to_have_text("Anthropic")
    await llm.select_option("anthropic")
    await page.get_by_label("Agent name", exact=True).fill("Claude desk")
    await page.get_by_role("button", name="Create agent").click()
    await expect(page.get_by_role("heading", name="Claude desk")).to_be_visible()
    await expect(page.get_by_label("Provider", exact=True)).to_have_value("anthropic")


async def test_the_agent_form_sets_provider_settings_and_fallbacks(page):
    await sign_up(page)
    await page.get_by_label("Agent name", exact=True).fill("Voice desk")
    await page.get_by_role("button", name="Create agent").click()
    await expect(page.get_by_role("heading", name="Voice desk")).to_be_visible()
    agent_id = page.url.rstrip("/").rsplit("/", 1)[-1].split("?")[0]

    # the settings offered are the chosen provider's, from the catalogue
    await page.get_by_label("Text-to-speech provider").select_option("cartesia")
    await expect(page.get_by_label("TTS emotion")).to_be_visible()
    await page.get_by_label("Text-to-speech provider").select_option("elevenlabs")
    await expect(page.get_by_label("TTS emotion")).to_have_count(0)
    await page.get_by_label("TTS stability").fill("0.3")
    await page.get_by_label("TTS use speaker boost").select_option("false")
    await page.get_by_label("Speech-to-text provider").select_option("deepgram")
    await page.get_by_label("STT endpointing ms").fill("300")
    await page.get_by_label("TTS fallback 1 provider").select_option("cartesia")
    await page.get_by_label("TTS fallback 1 model").fill("sonic-2")
    await page.get_by_label("LLM fallback 1 provider").select_option("groq")
    await page.get_by_label("LLM fallback 2 provider").select_option("anthropic")
    await page.get_by_label("LLM fallback 2 model").fill("claude-haiku-4-5")
    await page.get_by_role("button", name="Save agent").click()
    await expect(page.get_by_role("status")).to_have_text("Saved.")

    agent = await (await page.request.get(f"/agents/{agent_id}")).json()
    assert agent["TTS_settings"] == {"stability": 0.3, "use_speaker_boost": False}
    assert agent["STT_settings"] == {"endpointing_ms": 300}
    assert [(f["provider"], f["model"]) for f in agent["TTS_fallbacks"]] == [
        ("cartesia", "sonic-2")
    ]
    assert [f["provider"] for f in agent["LLM_fallbacks"]] == ["groq", "anthropic"]
    assert agent["LLM_fallbacks"][1]["model"] == "claude-haiku-4-5"  # groq's left to its default

    # shown again after a reload, and a fallback cleared is gone
    await page.reload()
    await expect(page.get_by_label("TTS stability")).to_have_value("0.3")
    await expect(page.get_by_label("LLM fallback 2 model")).to_have_value("claude-haiku-4-5")
    await page.get_by_label("LLM fallback 1 provider").select_option("")
    await page.get_by_role("button", name="Save agent").click()
    await expect(page.get_by_role("status")).to_have_text("Saved.")
    agent = await (await page.request.get(f"/agents/{agent_id}")).json()
    assert [f["provider"] for f in agent["LLM_fallbacks"]] == ["anthropic"]
