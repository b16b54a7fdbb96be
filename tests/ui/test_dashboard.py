"""The dashboard: figures from the query engine, filters by clicking rows, state in the URL."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from backend.auth import create_user
from backend.ingest.writer import store_batch
from models.entities import now_ms
from models.records import NewEvent
from tests.ui.conftest import SLOW, eventually
from tests.ui.test_live_page import text_of

HOUR = 3_600_000


def history(website_id: str) -> None:
    """Three visits in the last few hours: google (2 pages, a signup), twitter, direct."""
    now = now_ms()

    def ev(ago: float, path: str, visitor: str, kind: str = "pageview", source: str = "direct",
           channel: str = "Direct") -> NewEvent:
        return NewEvent(website_id=website_id, ts=now - int(ago * HOUR), event_type=kind,
                        pathname=path, visitor_id=visitor, session_id=visitor, source=source,
                        channel=channel, country="DE", device="desktop", browser="Firefox",
                        os="Linux")

    store_batch([ev(3, "/", "a", source="google", channel="Organic Search"),
                 ev(2.95, "/pricing", "a"), ev(2.9, "/pricing", "a", kind="signup"),
                 ev(2, "/blog", "b", source="twitter", channel="Organic Social"),
                 ev(1, "/", "c")])


async def figure(user: Any, marker: str, value: str) -> None:
    """Wait until the top stat ``marker`` shows ``value``."""
    def shows() -> bool:
        try:
            return text_of(user, marker).split(" | ")[1] == value
        except (AssertionError, ValueError, IndexError):
            return False
    shows.__name__ = f"{marker} shows {value}"
    await eventually(shows)


def dashboard_url(website: Any, query: str = "") -> str:
    return f"/websites/{website.id}/dashboard" + (f"?{query}" if query else "")


@pytest.mark.asyncio
async def test_the_dashboard_shows_the_history(signed_in: Any, website: Any) -> None:
    user = signed_in
    history(website.id)
    await user.open("/")
    user.find(marker=f"dashboard-{website.id}").click()
    await figure(user, "stat-visitors", "3")
    assert text_of(user, "stat-pageviews").startswith("Pageviews | 4")
    assert "67%" in text_of(user, "stat-bounce_rate")
    await user.should_see("Organic Search", retries=SLOW)
    await user.should_see("/pricing")
    await user.should_see("signup")
    assert "Realtime" in text_of(user, "website-tabs")


@pytest.mark.asyncio
async def test_clicking_a_row_filters_every_report(signed_in: Any, website: Any) -> None:
    user = signed_in
    history(website.id)
    await user.open(dashboard_url(website))
    await user.should_see("Organic Social", retries=SLOW)
    user.find("Organic Social").click()
    await user.should_see("Channel is Organic Social", retries=SLOW)
    await figure(user, "stat-visitors", "1")
    await user.should_see("/blog", retries=SLOW)
    await user.should_not_see("/pricing")
    user.find(marker="remove-filter").click()
    await figure(user, "stat-visitors", "3")


@pytest.mark.asyncio
async def test_filters_and_period_live_in_the_url(signed_in: Any, website: Any) -> None:
    user = signed_in
    history(website.id)
    await user.open(dashboard_url(website, "period=7d&f=" + quote("is|event:page|/pricing")))
    await user.should_see("Page is /pricing", retries=SLOW)
    await figure(user, "stat-visitors", "1")
    await figure(user, "stat-pageviews", "1")
    await user.open(dashboard_url(website, "period=custom&from=2020-01-01&to=2020-01-31"))
    await user.should_see("1 Jan – 31 Jan 2020")
    await figure(user, "stat-visitors", "0")
    await user.should_see("No data for this period.", retries=SLOW)
    await user.open(dashboard_url(website, "period=nonsense&f=bogus"))
    await figure(user, "stat-visitors", "3")
    await user.open(dashboard_url(website, "period=custom&from=0001-01-01&to=9999-12-31"))
    await figure(user, "stat-visitors", "3")


@pytest.mark.asyncio
async def test_adding_a_filter_from_the_filter_bar(signed_in: Any, website: Any) -> None:
    user = signed_in
    history(website.id)
    await user.open(dashboard_url(website))
    await figure(user, "stat-visitors", "3")
    user.find(marker="add-filter").click()
    user.find(marker="filter-value").type("twitter")
    user.find(marker="filter-apply").click()
    await user.should_see("Source is twitter", retries=SLOW)
    await figure(user, "stat-visitors", "1")


@pytest.mark.asyncio
async def test_a_stranger_sees_nothing(user: Any, website: Any, sign_in_as: Any) -> None:
    create_user("stranger@example.com", "another long password")
    history(website.id)
    await sign_in_as("stranger@example.com", "another long password")
    await user.open(dashboard_url(website))
    await user.should_see("Website not found")
    await user.should_not_see("Organic Search")


@pytest.mark.asyncio
async def test_export_is_a_zip_of_csv_files_of_the_current_view(signed_in: Any,
                                                                 website: Any) -> None:
    import io
    import zipfile

    user = signed_in
    history(website.id)
    await user.open(dashboard_url(website, "f=" + quote("is|visit:source|google")))
    await figure(user, "stat-visitors", "1")
    user.find(marker="export").click()
    response = await user.download.next(timeout=30)
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert {"totals.csv", "time_series.csv", "channels.csv", "top_pages.csv", "goals.csv",
            "countries.csv", "utm_campaign.csv"} <= set(archive.namelist())
    assert archive.read("totals.csv").decode() == (
        "visitors,visits,pageviews,views_per_visit,bounce_rate,visit_duration\n"
        "1,1,2,2.0,0,360\n")
    assert archive.read("top_pages.csv").decode() == (
        "top pages,visitors,pageviews,percentage\n/,1,1,100.0\n/pricing,1,1,100.0\n")
    assert archive.read("goals.csv").decode() == (
        "goals,visitors,conversion_rate,events\nsignup,1,100.0,1\n")


def test_csv_cells_never_become_formulas() -> None:
    from models.stats.export import report_csv

    result = {"results": [{"dimensions": ["=HYPERLINK(\"x\")"], "metrics": [1]},
                          {"dimensions": ["/a,b"], "metrics": [2]}]}
    assert report_csv(["page", "visitors"], result) == (
        'page,visitors\n"\'=HYPERLINK(""x"")",1\n"/a,b",2\n')


@pytest.mark.asyncio
@pytest.mark.parametrize(("link_filter", "label", "visitors"), [
    ("is|visit:source|google", "Source is google", "1"),
    ("is_not|visit:source|google", "Source is not google", "2"),
    ("contains|event:page|PRIC", "Page contains PRIC", "1"),
    ("contains|visit:source|t", "Source contains t", "2"),  # direct, twitter
])
async def test_every_filter_operator_filters_the_dashboard(
        signed_in: Any, website: Any, link_filter: str, label: str, visitors: str) -> None:
    user = signed_in
    history(website.id)
    await user.open(dashboard_url(website, "f=" + quote(link_filter)))
    await user.should_see(label, retries=SLOW)
    await figure(user, "stat-visitors", visitors)


@pytest.mark.asyncio
async def test_the_chart_interval_lives_in_the_url(signed_in: Any, website: Any) -> None:
    user = signed_in
    history(website.id)
    await user.open(dashboard_url(website, "period=7d&interval=hour"))
    await figure(user, "stat-visitors", "3")
    [chart] = user.find(marker="trend-chart").elements

    def hourly() -> bool:
        labels = chart.props["options"]["xAxis"]["data"]
        return len(labels) >= 24 * 6 and labels[0].endswith(":00:00")
    await eventually(hourly)


@pytest.mark.asyncio
async def test_goal_properties_break_down_and_filter(signed_in: Any, website: Any) -> None:
    user = signed_in
    now = now_ms()
    store_batch([NewEvent(website_id=website.id, ts=now - 60_000 * n, event_type="signup",
                          pathname="/", visitor_id=f"p{n}", session_id=f"p{n}",
                          props={"plan": "pro" if n % 3 else "free"}) for n in range(1, 7)])
    await user.open(dashboard_url(website))
    await user.should_see("signup", retries=SLOW)
    user.find(marker="report-goals-property").type("plan")
    user.find(marker="report-goals-property-show").click()
    await user.should_see("pro", retries=SLOW)
    assert "4 · 4" in text_of(user, "report-goals")  # visitors · events with plan=pro
    user.find("free").click()
    await user.should_see("Property plan is free", retries=SLOW)
    await figure(user, "stat-visitors", "2")


@pytest.mark.asyncio
async def test_realtime_in_the_period_picker_opens_the_live_view(signed_in: Any,
                                                                 website: Any) -> None:
    user = signed_in
    await user.open(dashboard_url(website))
    await figure(user, "stat-visitors", "0")
    [picker] = user.find(marker="period").elements
    picker.set_value("realtime")
    await user.should_see("Example · live", retries=SLOW)
