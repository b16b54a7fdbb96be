"""AlertEngine: evaluates every website's alert rules on its live window, in memory.

It listens to the hub like any live page: each batch of committed events re-evaluates the rules
of its website, and a one-second tick catches what only time changes (a window emptying, a
silence). No database polling: the database is read when rules change (and once at start).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import peewee

import models.alerts
from backend.alerts.delivery import DeliveryQueue
from backend.live.hub import Hub, HubMessage
from models.alerts import AlertHistory, AlertRule, Delivery, Webhook, rules_of
from models.entities import Event, Website, now_ms
from models.records import iso_ms

log = logging.getLogger("pulse.alerts")

GOAL_SEED_LIMIT = 100_000


@dataclass
class RuleState:
    """Where one rule stands: firing or not, since when, and its goal events' times."""

    rule: AlertRule
    firing: bool = False
    last_fired: int | None = None
    since: int | None = None  # a drop: when visitors first fell to the threshold
    value: int = 0
    times: deque[int] = field(default_factory=deque)  # a goal: matching events' times


@dataclass
class ActiveAlert:
    """A rule that is firing now (what the live page's banner shows)."""

    rule_id: int
    kind: str
    text: str
    value: int
    since: int


class AlertEngine:
    """Every website's rules, evaluated on the hub's live windows as events arrive and expire."""

    def __init__(self, hub: Hub, deliveries: DeliveryQueue, base_url: str,
                 clock: Callable[[], int] = now_ms, *, enabled: bool = True,
                 reload_every: float = 0.0) -> None:
        # ``enabled`` False: another process evaluates and notifies (a worker other than the
        # panel's, or an instance with PULSE_ALERTS off); rules are still written from here.
        # ``reload_every`` > 0: rules may change in other processes (a cluster), so re-read
        # them that often (seconds).
        self.enabled = enabled
        self.reload_every = reload_every
        self._next_reload = 0.0
        self.hub = hub
        self.deliveries = deliveries
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        self._rules: dict[str, list[RuleState]] = {}
        self._unsubscribe: dict[str, Callable[[], None]] = {}
        self._last_event: dict[str, int] = {}
        self.fired = 0  # fired and resolved notifications (tests and /metrics read it)

    # -- rules ------------------------------------------------------------------------------
    def load(self) -> None:
        """Read every website's rules (at start, and periodically in a cluster)."""
        if not self.enabled:
            return
        website_ids = {r.website_id for r in AlertRule.select(AlertRule.website)}
        for website_id in website_ids | set(self._rules):
            self.reload(website_id)

    def reload(self, website_id: str) -> None:
        """Re-read one website's rules (after one was created or deleted); keep the states of
        rules that still exist."""
        if not self.enabled:
            return
        now = self.clock()
        old = {state.rule.id: state for state in self._rules.get(website_id, [])}
        states = []
        for rule in rules_of(website_id):
            state = old.get(rule.id)
            if state is None:
                state = self._new_state(rule, now)
            else:
                state.rule = rule
            states.append(state)
        if not states:
            self.forget(website_id)
            return
        self._rules[website_id] = states
        if website_id not in self._unsubscribe:
            self._unsubscribe[website_id] = self.hub.subscribe(
                website_id, self._on_message)
            last = (Event.select(peewee.fn.MAX(Event.ts))
                    .where(Event.website == website_id).scalar())
            self._last_event[website_id] = last if last is not None else now
        self.evaluate(website_id, now)

    def _new_state(self, rule: AlertRule, now: int) -> RuleState:
        state = RuleState(rule, since=now)
        latest = (AlertHistory.select().where(AlertHistory.rule == rule)
                  .order_by(AlertHistory.at.desc(), AlertHistory.id.desc()).first())
        if latest is not None:  # a restart keeps a firing rule firing (no second notification)
            state.firing = latest.state == "fired"
            fired = (AlertHistory.select(peewee.fn.MAX(AlertHistory.at))
                     .where((AlertHistory.rule == rule) & (AlertHistory.state == "fired"))
                     .scalar())
            state.last_fired = fired
        if rule.kind == "goal" and rule.minutes:
            rows = (Event.select(Event.ts)
                    .where((Event.website == rule.website_id) & (Event.event_type == rule.event)
                           & (Event.ts > now - rule.minutes * 60_000))
                    .order_by(Event.ts).limit(GOAL_SEED_LIMIT).tuples())
            state.times.extend(int(row[0]) for row in cast(Any, rows))
        return state

    def create_rule(self, website: Website, body: dict[str, Any]) -> AlertRule:
        """Check and store a new rule (``AlertError`` names a bad field) and start watching it."""
        rule = models.alerts.create_rule(website, body)
        self.reload(website.id)
        return rule

    def delete_rule(self, rule: AlertRule) -> None:
        """Delete a rule and stop watching it."""
        models.alerts.delete_rule(rule)
        self.reload(rule.website_id)

    def delete_webhook(self, webhook: Webhook) -> None:
        """Delete a webhook (rules naming it stop notifying it)."""
        models.alerts.delete_webhook(webhook)
        self.reload(webhook.website_id)

    def forget(self, website_id: str) -> None:
        """Stop watching a website (its last rule went, or the website did)."""
        self._rules.pop(website_id, None)
        self._last_event.pop(website_id, None)
        unsubscribe = self._unsubscribe.pop(website_id, None)
        if unsubscribe is not None:
            unsubscribe()

    def close(self) -> None:
        """Stop watching every website."""
        for website_id in list(self._rules):
            self.forget(website_id)

    # -- evaluation -------------------------------------------------------------------------
    def _on_message(self, message: HubMessage) -> None:
        if message.kind != "events" or not message.events:
            return
        website_id = message.website_id
        states = self._rules.get(website_id)
        if not states:
            return
        newest = max(event.ts for event in message.events)
        self._last_event[website_id] = max(self._last_event.get(website_id, 0), newest)
        for state in states:
            if state.rule.kind == "goal":
                name = state.rule.event
                state.times.extend(e.ts for e in message.events if e.event_type == name)
        self.evaluate(website_id, self.clock())

    def tick(self, now: int | None = None) -> None:
        """Evaluate every rule (the once-a-second job: time alone ends spikes, starts drops)."""
        now = self.clock() if now is None else now
        if self.reload_every > 0 and time.monotonic() >= self._next_reload:
            self._next_reload = time.monotonic() + self.reload_every
            self.load()
        for website_id in list(self._rules):
            try:
                self.evaluate(website_id, now)
            except Exception:
                log.exception("evaluating the alerts of %s failed", website_id)

    def evaluate(self, website_id: str, now: int) -> None:
        """Fire or resolve the website's rules whose condition started or ended."""
        states = self._rules.get(website_id)
        if not states:
            return
        stats = self.hub.stats(website_id)
        stats.expire(now)
        visitors = stats.current_visitors
        for state in states:
            holds, state.value = self._condition(state, website_id, visitors, now)
            rule = state.rule
            if holds and not state.firing:
                cooldown = rule.cooldown_minutes * 60_000
                if state.last_fired is None or now - state.last_fired >= cooldown:
                    state.firing = True
                    state.last_fired = now
                    self._notify(website_id, state, "fired", now)
            elif not holds and state.firing:
                state.firing = False
                self._notify(website_id, state, "resolved", now)

    def _condition(self, state: RuleState, website_id: str, visitors: int,
                   now: int) -> tuple[bool, int]:
        rule = state.rule
        if rule.kind == "spike":
            return visitors >= (rule.threshold or 0), visitors
        minutes_ms = (rule.minutes or 0) * 60_000
        if rule.kind == "drop":
            if visitors > (rule.threshold or 0):
                state.since = None
                return False, visitors
            if state.since is None:
                state.since = now
            return now - state.since >= minutes_ms, visitors
        if rule.kind == "silence":
            idle = max(0, now - self._last_event.get(website_id, now))
            return idle >= minutes_ms, idle // 60_000
        times = state.times
        while times and times[0] <= now - minutes_ms:
            times.popleft()
        return len(times) > (rule.threshold or 0), len(times)

    # -- notifying --------------------------------------------------------------------------
    def _notify(self, website_id: str, state: RuleState, what: str, now: int) -> None:
        rule = state.rule
        website = Website.get_or_none(Website.id == website_id)
        if website is None:  # deleted meanwhile, with its rules
            self.forget(website_id)
            return
        threshold = rule.threshold if rule.threshold is not None else rule.minutes
        AlertHistory.create(website=website_id, rule=rule, kind=rule.kind, state=what,
                            value=state.value, threshold=threshold, at=now)
        self.fired += 1
        payload = {
            "website_id": website_id, "website": website.domain,
            "rule_id": rule.id, "kind": rule.kind, "state": what, "value": state.value,
            "threshold": threshold, "at": iso_ms(now),
            "url": f"{self.base_url}/websites/{website_id}/live",
        }
        log.info("alert %s %s on %s: %s (value %d)", rule.id, what, website_id, rule.describe(),
                 state.value)
        hooks = rule.webhooks()
        if hooks:
            for webhook in Webhook.select().where((Webhook.id.in_(hooks))
                                                  & (Webhook.website == website_id)):
                try:
                    self.deliveries.webhook(webhook, payload)
                except Exception:  # one notification's failure never costs the others
                    log.exception("queueing a webhook of rule %s failed", rule.id)
        mail = dict(payload, rule=rule.describe())
        for address in rule.email_list():
            try:
                self.deliveries.email(website_id, address, mail)
            except Exception:
                log.exception("queueing an email of rule %s failed", rule.id)

    def send_test(self, webhook: Webhook) -> Delivery:
        """Queue a test POST to ``webhook`` (state ``test``)."""
        website = Website.get_by_id(webhook.website_id)
        now = self.clock()
        return self.deliveries.webhook(webhook, {
            "website_id": website.id, "website": website.domain, "rule_id": None,
            "kind": "test", "state": "test", "value": 0, "threshold": None, "at": iso_ms(now),
            "url": f"{self.base_url}/websites/{website.id}/live"})

    def active(self, website_id: str) -> list[ActiveAlert]:
        """The website's rules firing now."""
        return [ActiveAlert(s.rule.id, s.rule.kind, s.rule.describe(), s.value,
                            s.last_fired or 0)
                for s in self._rules.get(website_id, []) if s.firing]

    def state(self, rule_id: int) -> RuleState | None:
        """The state of one rule (tests and the panel read it)."""
        for states in self._rules.values():
            for state in states:
                if state.rule.id == rule_id:
                    return state
        return None


def describe_payload(payload: dict[str, Any]) -> str:
    """A one-line summary of a delivery's body for the panel."""
    return f"{payload.get('kind')} {payload.get('state')} (value {payload.get('value')})"
