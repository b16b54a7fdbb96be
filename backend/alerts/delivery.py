"""Notifications of alerts: signed webhook POSTs and emails, sent from their own bounded queue.

Each notification is a ``Delivery`` row first (its status is what the panel shows), then its id
goes into the queue. A few workers send; a failure is retried with exponential backoff until the
delivery is ten minutes old. Tracking and the live view never wait for any of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote, urlsplit

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from backend.settings import SettingsError
from models.alerts import Delivery, Webhook
from models.entities import now_ms

log = logging.getLogger("pulse.alerts")

USER_AGENT = "Pulse-Alerts/1"


def signature(secret: str, body: bytes) -> str:
    """The ``X-Pulse-Signature`` header of ``body``: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class SmtpError(SettingsError):
    """``PULSE_SMTP_URL`` cannot be used."""


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how alert emails are sent."""

    host: str
    port: int
    security: str  # starttls | tls | none
    username: str
    password: str
    sender: str

    @classmethod
    def parse(cls, url: str, sender: str = "") -> SmtpConfig | None:
        """The configuration of ``PULSE_SMTP_URL`` (None when it is empty)."""
        if not url:
            return None
        parts = urlsplit(url)
        security = {"smtp": "starttls", "smtps": "tls", "smtp+insecure": "none"}.get(parts.scheme)
        if security is None or not parts.hostname:
            raise SmtpError("PULSE_SMTP_URL must look like smtp://host:587, smtps://host:465 or "
                            "smtp+insecure://host:25")
        try:
            port = parts.port or {"starttls": 587, "tls": 465, "none": 25}[security]
        except ValueError:
            raise SmtpError("PULSE_SMTP_URL has an invalid port") from None
        return cls(parts.hostname, port, security, unquote(parts.username or ""),
                   unquote(parts.password or ""), sender or f"pulse@{parts.hostname}")

    def send(self, to: str, subject: str, text: str, timeout: float) -> None:
        """Send one plain-text email (blocking: run it off the event loop)."""
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message.set_content(text)
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if self.security == "tls":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=timeout)
        with smtp:
            if self.security == "starttls":
                smtp.starttls(context=context)
            if self.username:
                smtp.login(self.username, self.password)
            smtp.send_message(message)


class DeliveryQueue:
    """Sends deliveries from a bounded queue with a few workers, retrying with backoff."""

    def __init__(
        self,
        smtp: SmtpConfig | None,
        *,
        size: int = 1000,
        workers: int = 4,
        timeout: float = 10.0,
        first_backoff: float = 5.0,
        max_age: float = 600.0,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.smtp = smtp
        self._size = size
        self._workers = workers
        self._timeout = timeout
        self._first_backoff = first_backoff
        self._max_age_ms = int(max_age * 1000)
        self._clock = clock
        self._queue: asyncio.Queue[int] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._timers: set[asyncio.TimerHandle] = set()
        self._client: AsyncHTTPClient | None = None

    def _start(self) -> asyncio.Queue[int]:
        if self._queue is None:
            self._queue = asyncio.Queue(self._size)
            self._client = AsyncHTTPClient(force_instance=True, max_clients=self._workers)
            self._tasks = [asyncio.get_running_loop().create_task(self._work())
                           for _ in range(self._workers)]
        return self._queue

    def submit(self, delivery: Delivery) -> None:
        """Queue a stored delivery; if the queue is full it fails at once (never waits)."""
        try:
            self._start().put_nowait(delivery.id)
        except asyncio.QueueFull:
            self._finish(delivery.id, "failed", None, "the delivery queue is full")
            log.warning("delivery queue full: dropped delivery %s", delivery.id)

    def webhook(self, webhook: Webhook, payload: dict[str, Any]) -> Delivery:
        """Store and queue a webhook POST of ``payload``."""
        delivery = Delivery.create(
            website=webhook.website_id, webhook=webhook, channel="webhook", target=webhook.url,
            body=json.dumps(payload, ensure_ascii=False, separators=(",", ":")))
        self.submit(delivery)
        return delivery

    def email(self, website_id: str, to: str, payload: dict[str, Any]) -> Delivery:
        """Store and queue an email about ``payload`` (failed at once without SMTP)."""
        delivery = Delivery.create(
            website=website_id, channel="email", target=to,
            body=json.dumps(payload, ensure_ascii=False, separators=(",", ":")))
        if self.smtp is None:
            self._finish(delivery.id, "failed", None, "email is not configured (PULSE_SMTP_URL)")
        else:
            self.submit(delivery)
        return delivery

    async def _work(self) -> None:
        assert self._queue is not None
        while True:
            delivery_id = await self._queue.get()
            try:
                await self._attempt(delivery_id)
            except Exception:
                log.exception("delivery %s failed unexpectedly", delivery_id)
            finally:
                self._queue.task_done()

    async def _attempt(self, delivery_id: int) -> None:
        delivery = Delivery.get_or_none(Delivery.id == delivery_id)
        if delivery is None:  # its website or webhook was deleted meanwhile
            return
        code: int | None = None
        try:
            if delivery.channel == "webhook":
                code = await self._post(delivery)
            else:
                await self._mail(delivery)
        except Exception as error:  # a refused connection, a time-out, a 5xx, an SMTP error
            code = error.code if isinstance(error, HTTPClientError) else code
            self._failed(delivery, code, _reason(error))
        else:
            Delivery.update(status="sent", attempts=Delivery.attempts + 1, response_code=code,
                            error="", updated_at=self._clock()) \
                .where(Delivery.id == delivery_id).execute()

    async def _post(self, delivery: Delivery) -> int:
        webhook = Webhook.get_or_none(Webhook.id == delivery.webhook_id)
        if webhook is None:
            raise RuntimeError("the webhook was deleted")
        body = delivery.body.encode()
        assert self._client is not None
        response = await self._client.fetch(HTTPRequest(
            delivery.target, method="POST", body=body, follow_redirects=False,
            connect_timeout=self._timeout, request_timeout=self._timeout,
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT,
                     "X-Pulse-Signature": signature(webhook.secret, body)}))
        return int(response.code)

    async def _mail(self, delivery: Delivery) -> None:
        if self.smtp is None:
            raise RuntimeError("email is not configured (PULSE_SMTP_URL)")
        payload = json.loads(delivery.body)
        subject, text = email_text(payload)
        await asyncio.get_running_loop().run_in_executor(
            None, self.smtp.send, delivery.target, subject, text, self._timeout)

    def _failed(self, delivery: Delivery, code: int | None, reason: str) -> None:
        attempts = delivery.attempts + 1
        age = self._clock() - delivery.created_at
        if age >= self._max_age_ms:
            self._finish(delivery.id, "failed", code, reason, attempts)
            log.warning("delivery %s to %s gave up after %d attempts: %s", delivery.id,
                        delivery.target, attempts, reason)
            return
        delay = min(self._first_backoff * 2 ** (attempts - 1),
                    (self._max_age_ms - age) / 1000)
        self._finish(delivery.id, "retrying", code, reason, attempts)
        loop = asyncio.get_running_loop()
        timer = loop.call_later(max(delay, 0.0), self._retry, delivery.id)
        self._timers.add(timer)

    def _retry(self, delivery_id: int) -> None:
        self._timers = {t for t in self._timers if not t.cancelled() and t.when() >
                        asyncio.get_running_loop().time()}
        delivery = Delivery.get_or_none(Delivery.id == delivery_id)
        if delivery is not None:
            self.submit(delivery)

    def _finish(self, delivery_id: int, status: str, code: int | None, error: str,
                attempts: int | None = None) -> None:
        changes: dict[Any, Any] = {Delivery.status: status, Delivery.response_code: code,
                                   Delivery.error: error[:500], Delivery.updated_at: self._clock()}
        if attempts is not None:
            changes[Delivery.attempts] = attempts
        Delivery.update(changes).where(Delivery.id == delivery_id).execute()

    @property
    def pending(self) -> int:
        """Deliveries waiting in the queue (not counting those waiting to be retried)."""
        return self._queue.qsize() if self._queue is not None else 0

    async def close(self) -> None:
        """Stop sending (what is unsent stays in the database with its status)."""
        for timer in self._timers:
            timer.cancel()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            self._client.close()
        self._queue = None
        self._tasks = []


def _reason(error: Exception) -> str:
    if isinstance(error, HTTPClientError):
        return f"HTTP {error.code}" if error.code != 599 else f"no answer: {error.message}"
    return f"{type(error).__name__}: {error}"


def email_text(payload: dict[str, Any]) -> tuple[str, str]:
    """The subject and text of an alert email."""
    state = payload.get("state", "")
    subject = f"[Pulse] {payload.get('website')}: {payload.get('kind')} alert {state}"
    text = (f"Website: {payload.get('website')}\nRule: {payload.get('rule')}\n"
            f"State: {state}\nValue: {payload.get('value')}\n"
            f"Threshold: {payload.get('threshold')}\nAt: {payload.get('at')}\n\n"
            f"Live view: {payload.get('url')}\n")
    return subject, text
