"""Campaign parameters (UTM, click ids) and the channel of a visit, the way Plausible groups them.

The channel table (first match wins), documented in the README:

| channel          | when                                                                      |
|------------------|---------------------------------------------------------------------------|
| Paid Search      | a search click id (gclid, gbraid, wbraid, dclid, msclkid), or a search     |
|                  | engine source with a paid medium (cpc, ppc, paid…)                        |
| Paid Social      | a social click id (ttclid, twclid, li_fat_id, ScCid, epik), or a social    |
|                  | network source with a paid medium                                         |
| Display          | medium display, banner, cpm, interstitial, expandable                    |
| Affiliates       | medium affiliate(s)                                                       |
| Email            | source or medium email, e-mail, newsletter                                |
| Organic Search   | a search engine source                                                    |
| Organic Social   | a social network source (fbclid alone stays organic, as Facebook adds it) |
| Organic Video    | a video site source (youtube, vimeo, twitch)                              |
| Referral         | any other referring site or utm_source                                    |
| Direct           | no referrer, no utm_source, no click id                                   |
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs

MAX_UTM = 100

UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")

# Click id → (the source it implies when there is no better one, whether it means a paid click).
CLICK_IDS: dict[str, tuple[str, str]] = {
    "gclid": ("google", "search"), "gbraid": ("google", "search"),
    "wbraid": ("google", "search"), "dclid": ("google", "search"),
    "msclkid": ("bing", "search"), "fbclid": ("facebook", ""),
    "ttclid": ("tiktok", "social"), "twclid": ("twitter", "social"),
    "li_fat_id": ("linkedin", "social"), "sccid": ("snapchat", "social"),
    "epik": ("pinterest", "social"),
}

SEARCH_ENGINES = frozenset({
    "google", "bing", "duckduckgo", "yahoo", "yandex", "baidu", "ecosia", "brave", "qwant",
    "startpage", "naver", "seznam", "yandex.ru", "search.brave.com",
})
SOCIAL_NETWORKS = frozenset({
    "twitter", "facebook", "instagram", "linkedin", "reddit", "pinterest", "tiktok",
    "mastodon", "bluesky", "threads", "snapchat", "tumblr", "vk", "weibo", "quora",
    "hacker news", "discord", "telegram", "whatsapp", "x",
})
VIDEO_SITES = frozenset({"youtube", "vimeo", "twitch", "dailymotion"})

_PAID_MEDIUM = re.compile(r"^(.*cp.*|ppc|retargeting|paid.*)$")
_DISPLAY_MEDIUM = frozenset({"display", "banner", "expandable", "interstitial", "cpm"})
_EMAIL = re.compile(r"e[-_ ]?mail|newsletter")

CHANNELS = ("Direct", "Organic Search", "Paid Search", "Organic Social", "Paid Social",
            "Organic Video", "Email", "Affiliates", "Display", "Referral")


@dataclass(slots=True, frozen=True)
class Campaign:
    """The campaign parameters of a landing page's URL (lower-cased source and medium)."""

    utm_source: str = ""
    utm_medium: str = ""
    utm_campaign: str = ""
    utm_term: str = ""
    utm_content: str = ""
    click_id: str = ""  # the name of the click id parameter (gclid …), never its value


NO_CAMPAIGN = Campaign()


def campaign_of(query: str) -> Campaign:
    """The UTM parameters and click id of a page's query string (``ref``/``source`` count as
    ``utm_source``, as in Plausible)."""
    if not query:
        return NO_CAMPAIGN
    params = parse_qs(query, max_num_fields=50)

    def first(*keys: str) -> str:
        for key in keys:
            if params.get(key) and params[key][0].strip():
                return params[key][0].strip()[:MAX_UTM]
        return ""

    click_id = next((key for key in params if key.lower() in CLICK_IDS), "").lower()
    campaign = Campaign(
        utm_source=first("utm_source", "ref", "source").lower(),
        utm_medium=first("utm_medium").lower(),
        utm_campaign=first("utm_campaign"),
        utm_term=first("utm_term"),
        utm_content=first("utm_content"),
        click_id=click_id,
    )
    return NO_CAMPAIGN if campaign == NO_CAMPAIGN else campaign


def channel_of(source: str, campaign: Campaign = NO_CAMPAIGN) -> str:
    """The channel of a visit from its source and campaign parameters (the table above)."""
    source = (source or "direct").lower()
    medium = campaign.utm_medium
    click_kind = CLICK_IDS.get(campaign.click_id, ("", ""))[1]
    paid = bool(_PAID_MEDIUM.match(medium)) if medium else False
    if click_kind == "search" or (paid and source in SEARCH_ENGINES):
        return "Paid Search"
    if click_kind == "social" or (paid and source in SOCIAL_NETWORKS):
        return "Paid Social"
    if medium in _DISPLAY_MEDIUM:
        return "Display"
    if medium in ("affiliate", "affiliates"):
        return "Affiliates"
    if _EMAIL.search(source) or _EMAIL.search(medium):
        return "Email"
    if source in SEARCH_ENGINES:
        return "Organic Search"
    if source in SOCIAL_NETWORKS:
        return "Organic Social"
    if source in VIDEO_SITES:
        return "Organic Video"
    if source != "direct":
        return "Referral"
    return "Direct"


def implied_source(campaign: Campaign) -> str:
    """The source a click id implies (gclid → google), or ''."""
    return CLICK_IDS.get(campaign.click_id, ("", ""))[0]
