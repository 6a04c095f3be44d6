"""Schedules as Harbor names them (Hourly, Daily, Weekly, Custom) on top of croniter.

Harbor's cron strings have six fields, seconds first ("0 0 * * * *"); five-field Unix strings
("0 * * * *") are accepted too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from croniter import croniter

from portside.errors import Invalid

PRESETS = {"Hourly": "0 0 * * * *", "Daily": "0 0 0 * * *", "Weekly": "0 0 0 * * 0"}
SCHEDULED_TYPES = frozenset({*PRESETS, "Custom", "Schedule"})


@dataclass(frozen=True, slots=True)
class CronSchedule:
    type: str
    cron: str

    def next_after(self, moment: datetime) -> datetime:
        fields = self.cron.split()
        it = croniter(self.cron, moment.astimezone(UTC), second_at_beginning=len(fields) == 6)
        nxt = it.get_next(datetime)
        assert isinstance(nxt, datetime)
        return nxt if nxt.tzinfo else nxt.replace(tzinfo=UTC)


def parse_schedule(schedule_type: str | None, cron: str | None) -> CronSchedule | None:
    """None for Manual/None (nothing to schedule); raises Invalid naming the bad field."""
    kind = (schedule_type or "").strip()
    if kind in ("", "None", "Manual"):
        return None
    if kind not in SCHEDULED_TYPES:
        raise Invalid(f"schedule.type {schedule_type!r} is not one of Hourly, Daily, Weekly, Custom, Manual, None")
    expression = (cron or "").strip() or PRESETS.get(kind, "")
    if kind in PRESETS and not (cron or "").strip():
        expression = PRESETS[kind]
    fields = expression.split()
    if len(fields) not in (5, 6) or not croniter.is_valid(expression, second_at_beginning=len(fields) == 6):
        raise Invalid(f"schedule.cron {cron!r} is not a valid cron expression (5 or 6 fields)")
    return CronSchedule(kind, expression)
