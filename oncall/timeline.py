"""The schedule page's timeline: the final shifts of the coming days as server-rendered SVG
(a pure function of the shifts; no script, so the admin's CSP needs nothing more)."""

from datetime import timedelta
from zoneinfo import ZoneInfo

from django.utils.html import escape

WIDTH, ROW, LABEL, AXIS = 1000, 28, 0, 22
COLOURS = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f"]
OVERRIDE_COLOUR = "#e15759"


def svg(shifts, start, days, names, zone="UTC", now=None):
    """An SVG of ``shifts`` (rotation.Shift, person = user id) over ``days`` days from
    ``start``; ``names``: {user id: label}; days are drawn in ``zone``."""
    end = start + timedelta(days=days)
    total = (end - start).total_seconds()
    tz = ZoneInfo(zone)

    def x(t):
        return round((t - start).total_seconds() / total * WIDTH, 1)

    people = []
    for s in shifts:
        if s.person not in people:
            people.append(s.person)
    height = AXIS + ROW * max(len(people), 1) + 4
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="oncall-timeline" role="img" '
        f'viewBox="0 0 {WIDTH} {height}" width="100%" height="{height}">'
    ]
    day = start.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    while day.astimezone(start.tzinfo) < end:
        if day >= start:
            pos = x(day)
            parts.append(f'<line x1="{pos}" y1="0" x2="{pos}" y2="{height}" stroke="#ccc"/>')
            parts.append(
                f'<text x="{pos + 3}" y="14" font-size="11" fill="#555">{day:%a %d %b}</text>'
            )
        day = (day.replace(tzinfo=None) + timedelta(days=1)).replace(tzinfo=tz)
    for s in shifts:
        row = people.index(s.person)
        colour = OVERRIDE_COLOUR if s.layer is None else COLOURS[row % len(COLOURS)]
        x0, x1 = x(max(s.start, start)), x(min(s.end, end))
        name = escape(names.get(s.person, str(s.person)))
        title = escape(
            f"{names.get(s.person, s.person)}: {s.start.astimezone(tz):%a %d %b %H:%M} – "
            f"{s.end.astimezone(tz):%a %d %b %H:%M}"
        )
        y = AXIS + row * ROW
        parts.append(
            f'<g class="shift{" override" if s.layer is None else ""}">'
            f"<title>{title}</title>"
            f'<rect x="{x0}" y="{y}" width="{max(x1 - x0, 1)}" height="{ROW - 4}" rx="3" '
            f'fill="{colour}"/>'
            f'<text x="{x0 + 4}" y="{y + 17}" font-size="12" fill="#fff">{name}</text></g>'
        )
    if now is not None and start <= now < end:
        pos = x(now)
        parts.append(f'<line x1="{pos}" y1="0" x2="{pos}" y2="{height}" stroke="#c00"/>')
    parts.append("</svg>")
    return "".join(parts)
