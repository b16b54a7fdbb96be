"""Date ranges in a website's time zone, their comparison periods, and time buckets as SQL.

``7d``/``28d``/``30d``/``91d`` are the last N days including today; ``month`` and ``year`` run
from the first of the month / year to today; ``6mo``/``12mo`` are the last N calendar months
including this one; ``all`` starts on the day of the website's first visit; ``day`` is today.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

GRAINS = ("hour", "day", "week", "month")
_HOUR_MS = 3_600_000
_DAY_MS = 86_400_000


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True)
class DateRange:
    """A half-open range of time [start, end) in a time zone; day-aligned ranges keep their
    first and last day, so comparisons shift by days (whatever DST does)."""

    start: datetime
    end: datetime
    first_day: date | None = None
    last_day: date | None = None

    @property
    def start_ms(self) -> int:
        """The start in UTC milliseconds."""
        return _ms(self.start)

    @property
    def end_ms(self) -> int:
        """The (exclusive) end in UTC milliseconds."""
        return _ms(self.end)

    @property
    def zone(self) -> ZoneInfo:
        """The time zone of the range."""
        assert isinstance(self.start.tzinfo, ZoneInfo)
        return self.start.tzinfo

    def previous_period(self) -> DateRange:
        """The period of the same length just before this one."""
        if self.first_day is not None and self.last_day is not None:
            days = (self.last_day - self.first_day).days + 1
            return days_range(self.first_day - timedelta(days=days),
                              self.first_day - timedelta(days=1), self.zone)
        length = self.end - self.start
        return DateRange(self.start - length, self.start)

    def year_before(self) -> DateRange:
        """The same period one year earlier."""
        if self.first_day is not None and self.last_day is not None:
            return days_range(_year_earlier(self.first_day), _year_earlier(self.last_day),
                              self.zone)
        return DateRange(_year_earlier_moment(self.start), _year_earlier_moment(self.end))

    def default_grain(self) -> str:
        """The time grain Plausible would pick: hours for a day, days up to ~3 months."""
        hours = (self.end - self.start).total_seconds() / 3600
        if hours <= 48:
            return "hour"
        if hours <= 24 * 92:
            return "day"
        return "month"

    def iso(self) -> list[str]:
        """[first, last] moment as ISO 8601 with the zone's offset (for the API's echo)."""
        last = self.end - timedelta(seconds=1)
        return [self.start.isoformat(timespec="seconds"),
                last.astimezone(self.zone).isoformat(timespec="seconds")]


def _year_earlier(day: date) -> date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year - 1, day=28)


def _year_earlier_moment(moment: datetime) -> datetime:
    try:
        return moment.replace(year=moment.year - 1)
    except ValueError:
        return moment.replace(year=moment.year - 1, day=28)


def midnight(day: date, zone: ZoneInfo) -> datetime:
    """The start of ``day`` in ``zone``."""
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def days_range(first: date, last: date, zone: ZoneInfo) -> DateRange:
    """Whole days ``first`` to ``last`` (inclusive) in ``zone``."""
    return DateRange(midnight(first, zone), midnight(last + timedelta(days=1), zone),
                     first, last)


def _months_back(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


def named_range(name: str, zone: ZoneInfo, now: datetime, first_visit: date | None) -> DateRange:
    """The range a name such as ``7d`` or ``month`` means today in ``zone``; KeyError if none."""
    today = now.astimezone(zone).date()
    if name == "day":
        return days_range(today, today, zone)
    if name in ("7d", "28d", "30d", "91d"):
        days = int(name[:-1])
        return days_range(today - timedelta(days=days - 1), today, zone)
    if name == "month":
        return days_range(today.replace(day=1), today, zone)
    if name in ("6mo", "12mo"):
        return days_range(_months_back(today, int(name[:-2]) - 1), today, zone)
    if name == "year":
        return days_range(date(today.year, 1, 1), today, zone)
    if name == "all":
        return days_range(min(first_visit or today, today), today, zone)
    raise KeyError(name)


def _offset_ms(zone: ZoneInfo, ms: int) -> int:
    offset = datetime.fromtimestamp(ms / 1000, zone).utcoffset() or timedelta()
    return int(offset.total_seconds() * 1000)


def offset_changes(zone: ZoneInfo, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
    """[(from_ms, offset_ms)…]: the zone's UTC offset over [start, end), piece by piece."""
    pieces = [(start_ms, _offset_ms(zone, start_ms))]
    step = _DAY_MS
    at = start_ms
    while at < end_ms:
        nxt = min(at + step, end_ms)
        if _offset_ms(zone, nxt) != pieces[-1][1]:
            low, high = at, nxt  # offset(low) is the current one, offset(high) differs
            while high - low > 60_000:
                mid = (low + high) // 2
                if _offset_ms(zone, mid) == pieces[-1][1]:
                    low = mid
                else:
                    high = mid
            pieces.append((high, _offset_ms(zone, high)))
        at = nxt
    return pieces


def local_ms_sql(column: str, zone: ZoneInfo, start_ms: int, end_ms: int) -> str:
    """SQL for ``column`` (UTC ms) as local wall-clock ms in ``zone`` (integer arithmetic, so the
    same on SQLite and PostgreSQL)."""
    pieces = offset_changes(zone, start_ms, end_ms)
    if len(pieces) == 1:
        return f"({column} + {pieces[0][1]})"
    cases = " ".join(f"WHEN {column} < {start} THEN {offset}"
                     for (_, offset), (start, _) in zip(pieces, pieces[1:], strict=False))
    return f"({column} + CASE {cases} ELSE {pieces[-1][1]} END)"


def bucket_sql(grain: str, local: str, dialect: str) -> str:
    """SQL for the time bucket of local ms ``local``: a number (hour, day, week) or a month
    text ``YYYY-MM-01``."""
    if grain == "hour":
        return f"({local} / {_HOUR_MS})"
    if grain == "day":
        return f"({local} / {_DAY_MS})"
    if grain == "week":  # day 0 (1970-01-01) was a Thursday: weeks start on Monday
        return f"(({local} / {_DAY_MS} + 3) / 7)"
    if dialect == "postgres":
        return f"to_char(to_timestamp({local} / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-01')"
    return f"strftime('%Y-%m-01', {local} / 1000, 'unixepoch')"


_EPOCH = date(1970, 1, 1)


def bucket_label(grain: str, key: object) -> str:
    """The API's label of a bucket key from ``bucket_sql``."""
    if grain == "month":
        return str(key)
    number = int(str(key))
    if grain == "hour":
        moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(hours=number)
        return moment.strftime("%Y-%m-%d %H:00:00")
    if grain == "day":
        return (_EPOCH + timedelta(days=number)).isoformat()
    return (_EPOCH + timedelta(days=number * 7 - 3)).isoformat()


def time_labels(grain: str, period: DateRange) -> list[str]:
    """Every bucket label of ``period`` in order (the chart's x axis, empty buckets included)."""
    zone = period.zone
    labels: list[str] = []
    if grain == "hour":
        moment = period.start.astimezone(UTC).replace(tzinfo=None)
        local = period.start.replace(minute=0, second=0, microsecond=0)
        while local < period.end:
            label = local.strftime("%Y-%m-%d %H:00:00")
            if not labels or labels[-1] != label:
                labels.append(label)
            moment += timedelta(hours=1)
            local = moment.replace(tzinfo=UTC).astimezone(zone)
        return labels
    first = period.start.date()
    last = (period.end - timedelta(milliseconds=1)).astimezone(zone).date()
    day = first
    while day <= last:
        if grain == "day":
            label = day.isoformat()
        elif grain == "week":
            label = (day - timedelta(days=day.weekday())).isoformat()
        else:
            label = day.replace(day=1).isoformat()
        if not labels or labels[-1] != label:
            labels.append(label)
        day += timedelta(days=1)
    return labels
