"""The door of a public share link, ``/share/{slug}``: a 404 page for a revoked or unknown link,
the password form of a protected one (remembered in a signed cookie scoped to the link), then
the read-only live view at ``/share/{slug}/live`` (a panel page)."""

from __future__ import annotations

import asyncio
import hashlib
import html
import logging

import tornado.web

from backend.auth import verify_password
from backend.services import Services
from models.alerts import Share, share_by_slug

log = logging.getLogger("pulse.share")

COOKIE_DAYS = 30
SLUG = r"[A-Za-z0-9_\-]{1,64}"


def share_cookie_name(share: Share) -> str:
    """The cookie that remembers a share link's password."""
    return f"pulse_share_{share.id}"


def share_cookie_value(share: Share) -> str:
    """What the cookie holds: a digest of the link's password hash (a new password or a new
    link invalidates it)."""
    return hashlib.sha256(f"{share.id}:{share.password_hash}".encode()).hexdigest()[:32]


def share_unlocked(secret: str, share: Share, cookie: str | None) -> bool:
    """Whether a browser may see ``share``: no password, or its signed cookie is right."""
    if share.password_hash is None:
        return True
    if not cookie:
        return False
    value = tornado.web.decode_signed_value(secret, share_cookie_name(share), cookie,
                                            max_age_days=COOKIE_DAYS)
    return value is not None and value.decode() == share_cookie_value(share)


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>{title} · Pulse</title>
<style>
body{{font-family:system-ui,sans-serif;margin:0;background:#f8fafc;color:#0f172a}}
main{{max-width:24rem;margin:12vh auto;padding:1.5rem;background:#fff;border-radius:.5rem;
box-shadow:0 1px 3px #0002}}
h1{{font-size:1.25rem}} label{{display:block;margin:.75rem 0 .25rem}}
input{{width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem}}
button{{margin-top:1rem;padding:.5rem 1rem;font-size:1rem;background:#0f172a;color:#fff;
border:0;border-radius:.25rem}} .error{{color:#b91c1c}}
@media (prefers-color-scheme: dark){{body{{background:#0f172a;color:#e2e8f0}}
main{{background:#1e293b}} button{{background:#e2e8f0;color:#0f172a}}
.error{{color:#fca5a5}}}}
</style></head><body><main>{body}</main></body></html>"""


class ShareGateHandler(tornado.web.RequestHandler):
    """``GET``/``POST /share/{slug}``: 404, the password form, or on to the live view."""

    def initialize(self, services: Services) -> None:
        """Receive the services from the composition root."""
        self.services = services

    def _page(self, status: int, title: str, body: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Robots-Tag", "noindex")
        self.set_header("Referrer-Policy", "no-referrer")
        self.finish(PAGE.format(title=html.escape(title), body=body))

    def _not_found(self) -> None:
        self._page(404, "Not found", "<h1>This link does not exist</h1><p>It may have been "
                   "revoked. Ask whoever shared it for a new one.</p>")

    def _form(self, share: Share, status: int = 200, error: str = "") -> None:
        label = html.escape(share.label or "A shared live view")
        message = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
        self._page(status, "Password", (
            f"<h1>{label}</h1><p>This live view is protected by a password.</p>{message}"
            '<form method="post"><label for="password">Password</label>'
            '<input id="password" name="password" type="password" required autofocus '
            'autocomplete="current-password"><button type="submit">View</button></form>'))

    def get(self, slug: str) -> None:
        """The password form, or a redirect to the live view."""
        share = share_by_slug(slug)
        if share is None:
            self._not_found()
            return
        cookie = self.get_cookie(share_cookie_name(share))
        if share_unlocked(self.services.settings.secret, share, cookie):
            self.redirect(f"/share/{slug}/live")
            return
        self._form(share)

    async def post(self, slug: str) -> None:
        """Check the password (argon2, off the loop); remember it for this link only."""
        share = share_by_slug(slug)
        if share is None:
            self._not_found()
            return
        if share.password_hash is None:
            self.redirect(f"/share/{slug}/live", status=303)
            return
        throttle = self.services.login_throttle
        key, ip = f"share:{share.id}", self.request.remote_ip or ""
        wait = throttle.retry_after(key, ip)
        if wait > 0:
            self.set_header("Retry-After", str(int(wait) + 1))
            self._form(share, 429, "Too many wrong passwords. Try again later.")
            return
        password = self.get_body_argument("password", "")[:256]
        good = await asyncio.get_running_loop().run_in_executor(
            None, verify_password, share.password_hash, password)
        if not good:
            throttle.failed(key, ip)
            self._form(share, 401, "Wrong password.")
            return
        throttle.succeeded(key)
        self.set_signed_cookie(
            share_cookie_name(share), share_cookie_value(share), expires_days=COOKIE_DAYS,
            path=f"/share/{slug}", httponly=True, samesite="Lax",
            secure=self.request.protocol == "https")
        self.redirect(f"/share/{slug}/live", status=303)

    def check_xsrf_cookie(self) -> None:
        """The form carries no XSRF token: a forged post could only unlock the forger's own
        browser."""
