"""Cron schedules: expressions and time zones (:mod:`.cron`), what a schedule does at a given
moment (:mod:`.plans`, pure functions of ``now``) and the loop every worker runs to fire due
schedules exactly once (:mod:`.loop`). See docs/schedules.md."""

from zart.schedules.cron import Cron, parse_cron
from zart.schedules.plans import MAX_CATCHUP, MISFIRE_GRACE, ScheduleSpec

__all__ = ["MAX_CATCHUP", "MISFIRE_GRACE", "Cron", "ScheduleSpec", "parse_cron"]
