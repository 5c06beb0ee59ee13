"""The campaign dialer, driven tick by tick with an injected clock: a simulated day over US and
Indian prospects, replicas, crash recovery, and dispositions from the post-call analysis.

The simulation places thousands of calls; its worker stand-in ends them in bulk in SQL. It runs
the issue's 2,000 prospects (about a minute on two idle cores); `VOXLINE_CAMPAIGN_SIM_PROSPECTS`
sets another size.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from control import jobs
from control.dialing import campaign_dialer, campaigns, dialer, dnc
from control.dialing.window import CallingWindow
from control.models import Agent, Call, Campaign, DialerAttemptKey, Prospect
from control.security import utcnow
from control.services import agents as agent_service
from control.services import calls as call_service
from tests.control.campaign_dialing import (
    add_prospects,
    finish_calls,
    midday_zone,
    new_campaign,
    prospect,
)

SIM_PROSPECTS = int(os.environ.get("VOXLINE_CAMPAIGN_SIM_PROSPECTS", "2000"))
US_ZONES = ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles")
INDIA = ZoneInfo("Asia/Kolkata")
# Tomorrow, 00:00 UTC: evening in the US, early morning in India.
START = (utcnow() + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
STEP = timedelta(minutes=5)
SERVICE = {"Authorization": "Bearer test-service-token"}


def local_time_inside(moment: datetime, zones: list[str] | tuple[str, ...]) -> bool:
    """09:00 <= local time < 21:00 in every zone (the campaign's default window)."""
    return all(time(9) <= moment.astimezone(ZoneInfo(zone)).time() < time(21) for zone in zones)


# -- the simulated day ------------------------------------------------------------------------


@dataclass
class Plan:
    """One simulated prospect: its number and zone, and what happens to each of its calls."""

    index: int
    number: str
    timezone: str | None = None
    timezones: list[str] | None = None  # [] for a number whose zone nobody knows
    script: tuple[str, ...] = ("answered",)
    dnc: bool = False
    dupe_of: int | None = None
    callback: bool = False
    expired: bool = False
    priority: int = 0

    def outcome(self, attempt: int) -> str:
        return self.script[attempt - 1] if attempt <= len(self.script) else "answered"

    def ends_answered(self) -> bool:
        return self.script[-1] == "answered"


SCRIPTS = (
    (55, ("answered",)),
    (68, ("no_answer", "answered")),
    (76, ("busy", "busy", "busy")),
    (84, ("voicemail", "answered")),
    (92, ("failed", "no_answer", "answered")),
    (100, ("no_answer", "voicemail", "no_answer")),
)


def _number(index: int) -> tuple[str, dict]:
    """Numbers in area codes of every continental US zone (and one spanning two), some with a
    given zone, some with none known, and a quarter in India."""
    kind, serial = index % 20, 2_000_000 + index
    areas = ["212"] * 4 + ["312"] * 2 + ["303"] * 2 + ["415"] * 3 + ["602", "605"]
    if kind < len(areas):
        return f"+1{areas[kind]}{serial}", {}
    if kind == 13:
        return f"+1212{serial}", {"timezones": []}
    if kind == 14:
        return f"+1212{serial}", {"timezone": "America/Anchorage"}
    return f"+9198{serial:08d}", {}


def plan(index: int) -> Plan:
    number, zone = _number(index)
    script = next(script for bound, script in SCRIPTS if (index * 37) % 100 < bound)
    entry = Plan(index, number, script=script, priority=5 if index % 3 == 0 else 0, **zone)
    entry.dnc = index % 50 == 11
    entry.expired = index % 100 == 57
    entry.callback = index % 40 == 2 and script == ("answered",)
    if index % 50 == 24:  # the same person as the previous row, in another list
        entry.dupe_of = index - 1
        entry.number, zone = _number(index - 1)
        entry.timezone, entry.timezones = zone.get("timezone"), zone.get("timezones")
    return entry


async def test_a_simulated_day_keeps_every_rule(
    client, line, settings, telephony_settings, redis, livekit
):
    settings = settings.model_copy(update={"max_agent_sessions": 60})
    limit = 30
    campaign = await new_campaign(
        line, max_active_calls=limit, max_number_calls=3, min_time_between_calls=30
    )
    plans = [plan(index) for index in range(SIM_PROSPECTS)]
    rows = [
        prospect(
            campaign,
            entry.number,
            timezone=entry.timezone,
            timezones=entry.timezones,
            priority=entry.priority,
            **({"created_at": START - timedelta(days=100)} if entry.expired else {}),
        )
        for entry in plans
    ]
    await add_prospects(rows)
    by_id = {row.id: entry for row, entry in zip(rows, plans, strict=True)}
    for entry in plans:
        if entry.dnc:
            await dnc.add_dnc(line["workspace"].id, entry.number, reason="asked")

    now, end = START, START + timedelta(hours=30)
    seen: dict[uuid.UUID, datetime] = {}  # a call, and when the stand-in worker saw it
    callbacks: dict[uuid.UUID, datetime] = {}  # a prospect, and the time it asked for
    asked: list[tuple[uuid.UUID, datetime]] = []
    peak = 0
    while now < end:
        await campaign_dialer.tick(settings, telephony_settings, redis, now=now)
        calling = await Prospect.filter(campaign_id=campaign.id, status="calling").values(
            "id", "call_id", "attempts", "priority", "phone_number"
        )
        live = await Call.filter(
            campaign_id=campaign.id, status__in=call_service.LIVE_STATUSES
        ).count()
        assert len(calling) <= limit and live <= limit, (now, len(calling), live)
        peak = max(peak, live)
        if now == START:
            # Higher priority first: the first tick's calls are all from the priority-5 list.
            assert calling and {row["priority"] for row in calling} == {5}
            # India is asleep (05:30): its prospects wait for 09:00 there, not a tick longer.
            skipped = await Prospect.filter(campaign_id=campaign.id, skip_reason="outside_window")
            assert skipped
            for row in skipped:
                opening = datetime.combine(START.astimezone(INDIA).date(), time(9), INDIA)
                if row.timezones == ["Asia/Calcutta"]:
                    assert row.next_attempt_at == opening.astimezone(UTC)
                else:
                    assert row.next_attempt_at > now
        # The agent's analysis asked for callbacks: the disposition lands once the call settled.
        for prospect_id, when in list(asked):
            row = await Prospect.get(id=prospect_id)
            if row.status == "completed":
                await campaigns.apply_disposition(
                    row, "callback", callback_at=when, source="dialer"
                )
                callbacks[prospect_id] = when
                asked.remove((prospect_id, when))
        # The stand-in worker: even rows' calls last one step, odd rows' two.
        ending: dict[uuid.UUID, str] = {}
        for row in calling:
            entry = by_id[row["id"]]
            first_seen = seen.setdefault(row["call_id"], now)
            if now - first_seen >= STEP * (1 + entry.index % 2):
                ending[row["call_id"]] = entry.outcome(row["attempts"])
                if entry.callback and row["attempts"] == 1:
                    asked.append((row["id"], now + timedelta(hours=3)))
        await finish_calls(redis, ending, now)
        now += STEP
    assert peak == limit  # the limit was reached, so it was tested

    prospects = {row.id: row for row in await Prospect.filter(campaign_id=campaign.id)}
    owner = {
        uuid.UUID(entry["call_id"]): row for row in prospects.values() for entry in row.attempt_log
    }
    calls = await Call.filter(campaign_id=campaign.id).values("id", "to_number", "created_at")
    assert len(calls) == len(owner) == len(livekit.dispatches)
    for call in calls:
        row = owner[call["id"]]
        assert call["to_number"] == row.phone_number
        zones = row.timezones or US_ZONES
        assert local_time_inside(call["created_at"], zones), (call, zones)

    dialed_numbers = Counter(call["to_number"] for call in calls)
    paired = {entry.dupe_of for entry in plans if entry.dupe_of is not None}
    for prospect_id, row in prospects.items():
        entry = by_id[prospect_id]
        log = row.attempt_log
        assert len(log) == row.attempts <= 3, (entry, log)
        starts = [datetime.fromisoformat(attempt["started_at"]) for attempt in log]
        gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
        assert all(gap >= timedelta(minutes=30) for gap in gaps), starts
        if entry.dnc:
            assert row.status == "dnc" and entry.number not in dialed_numbers
        elif entry.expired:
            assert row.status == "expired" and not log
        elif entry.dupe_of is not None or entry.index in paired:
            continue  # checked below, as pairs
        elif entry.callback:
            assert prospect_id in callbacks, entry
            again = log[1:]
            for attempt in again:
                assert attempt["dial_reason"] == "callback due"
                assert datetime.fromisoformat(attempt["started_at"]) >= callbacks[prospect_id]
            if not again:
                assert row.status == "callback" and row.next_attempt_at >= callbacks[prospect_id]
        else:
            expected = "completed" if entry.ends_answered() else "failed"
            assert row.status == expected, (entry, row.status, row.skip_reason, log)
            assert [attempt["outcome"] for attempt in log] == list(entry.script)
    assert paired
    for entry in (entry for entry in plans if entry.dupe_of is not None):
        # One of the two is called, the other skipped as a dupe.
        first, second = (
            prospects[rows[entry.dupe_of].id],
            prospects[rows[entry.index].id],
        )
        assert dialed_numbers[entry.number] == len(first.attempt_log) + len(second.attempt_log)
        assert [bool(first.attempt_log), bool(second.attempt_log)].count(True) == 1
        skipped = second if first.attempt_log else first
        assert skipped.skip_reason == "dupe" and skipped.status == "pending"
    assert any(len(prospects[prospect_id].attempt_log) > 1 for prospect_id in callbacks)
    assert any(number.startswith("+91") for number in dialed_numbers)


# -- the rules, one at a time -----------------------------------------------------------------


async def test_a_callback_is_dialed_first_at_its_time_and_not_before(
    client, line, settings, telephony_settings, redis
):
    campaign = await new_campaign(line, min_time_between_calls=10)
    noon = START + timedelta(hours=17)  # 12:00 in New York
    waiting = [prospect(campaign, f"+1212200{index:04d}", priority=9) for index in range(3)]
    called_back = prospect(
        campaign,
        "+12122009999",
        status="callback",
        attempts=1,
        callback_at=noon + timedelta(minutes=30),
        next_attempt_at=noon + timedelta(minutes=30),
        last_called_at=noon - timedelta(hours=1),
    )
    await add_prospects([*waiting, called_back])
    settings = settings.model_copy(update={"max_agent_sessions": 1})
    await campaign_dialer.tick(settings, telephony_settings, redis, now=noon)
    assert (await Prospect.get(id=called_back.id)).status == "callback"  # not before its time
    first = await Call.get(campaign_id=campaign.id)
    await finish_calls(redis, {first.id: "answered"}, noon)
    later = noon + timedelta(minutes=31)
    await campaign_dialer.tick(settings, telephony_settings, redis, now=later)
    row = await Prospect.get(id=called_back.id)
    assert row.status == "calling" and row.attempts == 2  # before the priority-9 prospects
    assert row.attempt_log[-1]["dial_reason"] == "callback due"


async def test_a_dnc_number_is_never_dialed_and_max_attempts_end_a_prospect(
    client, line, settings, telephony_settings, redis, livekit
):
    campaign = await new_campaign(line, max_number_calls=2)
    noon = START + timedelta(hours=17)
    listed = prospect(campaign, "+12122000001")
    spent = prospect(campaign, "+12122000002", attempts=2, status="retrying", next_attempt_at=noon)
    await add_prospects([listed, spent])
    await dnc.add_dnc(line["workspace"].id, "+12122000001")
    assert await campaign_dialer.tick(settings, telephony_settings, redis, now=noon) == 0
    listed, spent = await Prospect.get(id=listed.id), await Prospect.get(id=spent.id)
    assert (listed.status, listed.skip_reason) == ("dnc", "dnc")
    assert (spent.status, spent.skip_reason) == ("failed", "max_attempts")
    assert not livekit.dispatches


async def test_a_number_called_by_another_campaign_is_a_dupe_until_dupe_days_pass(
    client, line, settings, telephony_settings, redis, livekit
):
    noon = START + timedelta(hours=17)
    earlier = await new_campaign(line, name="Earlier")
    other = prospect(earlier, "+12122000001", last_called_at=noon - timedelta(days=3))
    campaign = await new_campaign(line, dupe_days=7)
    again = prospect(campaign, "+12122000001")
    off = await new_campaign(line, name="No dupe check", dupe_days=-1)
    unchecked = prospect(off, "+12122000001")
    await add_prospects([other, again, unchecked])
    await Campaign.filter(id=earlier.id).update(active=False)
    assert await campaign_dialer.tick(settings, telephony_settings, redis, now=noon) == 1
    again = await Prospect.get(id=again.id)
    assert (again.status, again.skip_reason) == ("pending", "dupe")
    assert again.next_attempt_at == noon + timedelta(days=4)  # 7 days after the other call
    assert (await Prospect.get(id=unchecked.id)).status == "calling"


async def test_campaigns_ticking_together_dial_a_number_they_share_once(
    client, line, settings, telephony_settings, redis, livekit
):
    # The campaigns of a tick run side by side; their claims do not, so the dupe rule holds.
    noon = START + timedelta(hours=17)
    campaigns = [await new_campaign(line, name=f"Shared {n}", dupe_days=7) for n in range(3)]
    shared = [prospect(campaign, "+12122000001") for campaign in campaigns]
    await add_prospects(shared)
    assert await campaign_dialer.tick(settings, telephony_settings, redis, now=noon) == 1
    rows = [await Prospect.get(id=row.id) for row in shared]
    assert sorted((row.status, row.skip_reason) for row in rows) == [
        ("calling", None),
        ("pending", "dupe"),
        ("pending", "dupe"),
    ]
    assert len(livekit.dispatches) == 1


async def test_the_window_is_read_in_every_zone_of_the_prospect():
    # A number spanning Mountain and Central time: 09:00 must have come in both.
    zones = ("America/Denver", "America/North_Dakota/Center")
    day = datetime(2026, 6, 10, 8, tzinfo=UTC)  # 02:00 in Denver
    window = CallingWindow(zones, time(9), time(21))
    assert window.next_opening(day) == datetime(2026, 6, 10, 15, tzinfo=UTC)  # 09:00 MDT
    # It closes at 21:00 in the eastern one (20:00 in Denver).
    assert window.contains(datetime(2026, 6, 11, 1, 59, tzinfo=UTC))
    assert not window.contains(datetime(2026, 6, 11, 2, tzinfo=UTC))
    # Windows that never overlap (12 hours apart, 09:00-12:00): never.
    apart = CallingWindow(("Asia/Kolkata", "America/New_York"), time(9), time(12))
    assert apart.next_opening(day) is None


def test_a_window_across_midnight_and_a_window_without_bounds():
    night = CallingWindow(("UTC",), time(22), time(6))
    assert night.contains(datetime(2026, 6, 10, 23, 30, tzinfo=UTC))
    assert night.contains(datetime(2026, 6, 11, 5, 59, tzinfo=UTC))
    assert not night.contains(datetime(2026, 6, 11, 6, tzinfo=UTC))
    assert night.next_opening(datetime(2026, 6, 11, 12, tzinfo=UTC)) == datetime(
        2026, 6, 11, 22, tzinfo=UTC
    )
    always = CallingWindow(("America/New_York",))
    assert always.contains(datetime(2026, 6, 11, 3, tzinfo=UTC))


# -- replicas and restarts --------------------------------------------------------------------


async def test_two_replicas_ticking_at_once_dial_nothing_twice(
    client, line, settings, telephony_settings, redis, livekit
):
    settings = settings.model_copy(update={"max_agent_sessions": 100})
    campaign = await new_campaign(line, dialer_interval=2)
    await add_prospects([prospect(campaign, f"+1212200{index:04d}") for index in range(50)])
    noon = START + timedelta(hours=17)
    dialed = 0
    for step in range(3):
        at = noon + timedelta(seconds=2 * step)
        results = await asyncio.gather(
            *(campaign_dialer.tick(settings, telephony_settings, redis, now=at) for _ in range(3))
        )
        assert sorted(results)[:2] == [0, 0], results  # one replica took the tick
        dialed += sum(results)
    # Two claims at once past the tick's compare-and-set: disjoint, by SKIP LOCKED.
    await finish_calls(
        redis, {call_id: "busy" for call_id in await Call.all().values_list("id", flat=True)}, noon
    )
    rules = campaign_dialer.Rules.of(await campaigns.cached_config(campaign.id, redis))
    await campaign_dialer.settle_finished_calls(rules, noon)
    later = noon + timedelta(minutes=31)  # past min_time_between_calls
    claims = await asyncio.gather(
        *(campaign_dialer.claim(settings, rules, 10, later) for _ in range(2))
    )
    ids = [row.id for claimed, _ in claims for row in claimed]
    assert len(ids) == len(set(ids)) == 20
    assert dialed == len(livekit.dispatches) == await Call.all().count() == 50
    assert len(set(await Call.all().values_list("to_number", flat=True))) == 50


async def _orphan(campaign, attempt: int = 1) -> Prospect:
    """A prospect left as a replica that died while dialing it would: calling, lease run out."""
    row = prospect(campaign, "+12122000001")
    await add_prospects([row])
    call_id = dialer.attempt_call_id(row.id, attempt)
    await Prospect.filter(id=row.id).update(
        status="calling",
        attempts=attempt,
        call_id=call_id,
        last_called_at=START,
        next_attempt_at=START + timedelta(hours=17) - timedelta(seconds=1),
        attempt_log=[{"attempt": attempt, "call_id": str(call_id), "room_name": f"call-{call_id}"}],
    )
    return await Prospect.get(id=row.id)


async def test_after_a_crash_before_the_call_log_the_attempt_dials_once(
    client, line, settings, telephony_settings, redis, livekit
):
    campaign = await new_campaign(line)
    row = await _orphan(campaign)
    key = dialer.attempt_key(row.id, 1, campaign_dialer.PROSPECT_KEY)
    assert key == f"campaign-prospect:{row.id}:1"
    await DialerAttemptKey.create(workspace_id=line["workspace"].id, key=key, fingerprint="x")
    noon = START + timedelta(hours=17)
    assert await campaign_dialer.tick(settings, telephony_settings, redis, now=noon) == 1
    later = noon + timedelta(seconds=10)
    assert await campaign_dialer.tick(settings, telephony_settings, redis, now=later) == 0
    call = await Call.get(id=dialer.attempt_call_id(row.id, 1))
    assert call.campaign_id == campaign.id and call.campaign == campaign.slug  # reports group by it
    assert [d.room for d in livekit.dispatches.values()] == [call.room_name]
    assert (await Prospect.get(id=row.id)).attempts == 1  # the same attempt, not a new one


async def test_after_a_crash_after_the_dispatch_nothing_is_dialed_again(
    client, line, settings, telephony_settings, redis, livekit
):
    campaign = await new_campaign(line)
    await add_prospects([prospect(campaign, "+12122000001")])
    noon = START + timedelta(hours=17)
    assert await campaign_dialer.tick(settings, telephony_settings, redis, now=noon) == 1
    # The replica died before it recorded that the dispatch went out.
    (row,) = await Prospect.filter(campaign_id=campaign.id)
    await Prospect.filter(id=row.id).update(next_attempt_at=noon)
    later = noon + timedelta(minutes=2)
    assert await campaign_dialer.tick(settings, telephony_settings, redis, now=later) == 0
    assert len(livekit.dispatches) == 1
    await finish_calls(redis, {row.call_id: "answered"}, later)
    await campaign_dialer.tick(
        settings, telephony_settings, redis, now=later + timedelta(minutes=1)
    )
    row = await Prospect.get(id=row.id)
    assert (row.status, row.outcome, row.attempt_log[0]["outcome"]) == (
        "completed",
        "answered",
        "answered",
    )


async def test_the_campaign_dialer_runs_as_a_periodic_job(
    client, line, settings, redis, livekit, jobs_reach_livekit
):
    campaign = await new_campaign(line)
    zone = midday_zone(utcnow())  # the job runs on the real clock
    await add_prospects(
        [prospect(campaign, f"+9198{index:08d}", timezones=[zone]) for index in range(3)]
    )
    await jobs.drain(jobs.JobContext(settings, redis))
    assert len(livekit.dispatches) == 3


# -- dispositions from the post-call analysis --------------------------------------------------


async def test_the_analysis_picks_a_campaign_disposition_and_schedules_the_callback(
    client, line, settings, redis, scripted_llm
):
    settings = settings.model_copy(update={"allow_private_urls": True})
    campaign = await new_campaign(line)
    agent = line["agent"]
    await agent_service.update_agent(  # saved as a user would: a new, published version
        settings,
        agent.workspace_id,
        agent.id,
        {"LLM_base_url": scripted_llm.base_url, "LLM_model": "scripted"},
    )
    row = prospect(campaign, "+12122000001")
    await add_prospects([row])
    call = await call_service.create_call(
        await Agent.get(id=agent.id),
        direction="outbound",
        from_number="+16505551234",
        to_number=row.phone_number,
        campaign_id=campaign.id,
        call_id=dialer.attempt_call_id(row.id, 1),
    )
    await Prospect.filter(id=row.id).update(
        status="calling",
        attempts=1,
        call_id=call.id,
        attempt_log=[{"attempt": 1, "call_id": str(call.id), "started_at": utcnow().isoformat()}],
    )
    new_york = ZoneInfo("America/New_York")
    tomorrow_3pm = datetime.combine(
        utcnow().astimezone(new_york).date() + timedelta(days=1), time(15), new_york
    )
    scripted_llm.on(
        "Analyse this call",
        f'{{"disposition": "callback", "callback_at": "{tomorrow_3pm.isoformat()}"}}',
    )
    report = {
        "status": "completed",
        "end_reason": "user_hangup",
        "transcript": [
            {"role": "assistant", "text": "Hello, this is Acme Solar.", "started_at": None},
            {"role": "user", "text": "Busy now, call me tomorrow at 3.", "started_at": None},
        ],
    }
    response = await client.post(f"/internal/calls/{call.id}/report", json=report, headers=SERVICE)
    assert response.status_code == 200
    await jobs.drain(jobs.JobContext(settings, redis))
    asked = scripted_llm.requests[-1]["messages"][0]["content"]
    assert "callback_at" in asked and "remove_me" in asked  # the campaign's dispositions
    row = await Prospect.get(id=row.id)
    assert (row.status, row.disposition) == ("callback", "callback")
    assert row.callback_at == row.next_attempt_at == tomorrow_3pm.astimezone(UTC)
    assert row.attempt_log[0]["outcome"] == "answered"  # the attempt was settled first
    assert (await Call.get(id=call.id)).disposition == "callback"
