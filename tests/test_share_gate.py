"""/share/{slug}: the door of a share link — 404 for revoked and unknown links, the password form,
a signed cookie scoped to the link, then on to the read-only live view."""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest

from backend.auth import hash_password
from models.alerts import create_share, revoke_share
from models.websites import create_website
from tests.openapi_check import check_response
from tests.server_support import Response


async def fetch(http_client: Any, url: str, **kwargs: Any) -> Any:
    """Fetch without following redirects; check the answer against docs/openapi.yaml."""
    response = await http_client.fetch(url, follow_redirects=False, raise_error=False, **kwargs)
    check_response("/share/{slug}", kwargs.get("method", "GET"), Response(
        response.code, response.reason or "",
        {k.lower(): v for k, v in response.headers.get_all()}, response.body or b""))
    return response


@pytest.mark.gen_test
async def test_an_open_link_goes_to_its_live_view_and_a_revoked_one_is_404(
        http_client: Any, base_url: str, website: Any) -> None:
    share = create_share(website, "TV", None)
    response = await fetch(http_client, f"{base_url}/share/{share.slug}")
    assert response.code == 302
    assert response.headers["Location"] == f"/share/{share.slug}/live"
    revoke_share(share)
    response = await fetch(http_client, f"{base_url}/share/{share.slug}")
    assert response.code == 404
    assert b"This link does not exist" in response.body
    assert (await fetch(http_client, f"{base_url}/share/no-such-link")).code == 404
    # a website id is not a link
    assert (await fetch(http_client, f"{base_url}/share/{website.id}")).code == 404


@pytest.mark.gen_test(timeout=30)
async def test_a_password_is_asked_once_and_remembered_for_that_link_only(
        http_client: Any, base_url: str, website: Any) -> None:
    share = create_share(website, "Board", hash_password("open sesame"))
    other = create_share(create_website("other.example"), "Other",
                         hash_password("open sesame"))
    url = f"{base_url}/share/{share.slug}"
    response = await fetch(http_client, url)
    assert response.code == 200 and b'type="password"' in response.body
    assert b"Board" in response.body

    wrong = await fetch(http_client, url, method="POST",
                        body=urllib.parse.urlencode({"password": "guess"}))
    assert wrong.code == 401 and b"Wrong password." in wrong.body
    assert "Set-Cookie" not in wrong.headers

    right = await fetch(http_client, url, method="POST",
                        body=urllib.parse.urlencode({"password": "open sesame"}))
    assert right.code == 303 and right.headers["Location"] == f"/share/{share.slug}/live"
    cookie = right.headers["Set-Cookie"]
    assert f"Path=/share/{share.slug}" in cookie and "HttpOnly" in cookie
    pair = cookie.split(";")[0]

    again = await fetch(http_client, url, headers={"Cookie": pair})
    assert again.code == 302  # remembered: straight to the live view
    elsewhere = await fetch(http_client, f"{base_url}/share/{other.slug}",
                            headers={"Cookie": pair})
    assert elsewhere.code == 200 and b'type="password"' in elsewhere.body

    revoke_share(share)
    assert (await fetch(http_client, url, headers={"Cookie": pair})).code == 404
