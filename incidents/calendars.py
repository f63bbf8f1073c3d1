"""A business calendar row of the catalog, as the plain value the SLA clock works on.

Beside the clock rather than in the catalog: the catalog knows no incident (issue 16 §3), and
only the clock needs this value."""

from incidents.sla import Calendar


def _minutes(t, end=False):
    minutes = t.hour * 60 + t.minute
    # A window closing at 00:00 means "until the end of the day" (24:00), as the catalog's
    # BusinessHours documents and validates.
    return 1440 if end and minutes == 0 else minutes


def calendar_value(row, hours=None, holidays=None):
    """The ``incidents.sla.Calendar`` for ``row`` (a ``services.BusinessCalendar``).

    ``hours`` and ``holidays`` may be passed when already fetched (prefetch), to save queries
    in the sweep."""
    if row.is_24x7:
        return Calendar.twenty_four_seven(row.time_zone)
    hours = list(row.hours.all()) if hours is None else hours
    holidays = list(row.holidays.all()) if holidays is None else holidays
    weekly = [[] for _ in range(7)]
    for h in hours:
        weekly[h.weekday].append((_minutes(h.opens_at), _minutes(h.closes_at, end=True)))
    return Calendar(
        tz=row.time_zone,
        weekly=tuple(tuple(sorted(day)) for day in weekly),
        holidays=frozenset(h.date for h in holidays),
    )
