"""Server-rendered SVG bar charts for the metrics dashboard: no script, no CDN.

Each chart is an ``<svg role="img">`` named by its ``<title>`` and described by its ``<desc>``
(the figures as a sentence), each bar carrying its own ``<title>`` (a tooltip, and read by
screen readers); the dashboard prints the same figures in a table beside it.
"""

from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

BAR_HEIGHT = 22
GAP = 6
LABEL_WIDTH = 130
VALUE_WIDTH = 110
WIDTH = 560


def bar_chart(*, chart_id, title, bars, colour="#2563eb"):
    """A horizontal bar chart. ``bars``: [(label, value (a number, None: no figure), text shown
    for the value)]. Bars scale to the largest value."""
    bars = list(bars)
    largest = max((v for _label, v, _text in bars if v), default=0)
    room = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    height = max(len(bars), 1) * (BAR_HEIGHT + GAP) + GAP
    rows = []
    for n, (label, value, text) in enumerate(bars):
        y = GAP + n * (BAR_HEIGHT + GAP)
        length = round(room * value / largest) if value and largest else 0
        rows.append(
            (
                y + BAR_HEIGHT * 0.7,
                label[:22],
                LABEL_WIDTH,
                y,
                max(length, 1 if value else 0),
                BAR_HEIGHT,
                colour,
                f"{label}: {text}",
                LABEL_WIDTH + length + 6,
                y + BAR_HEIGHT * 0.7,
                text,
            )
        )
    description = "; ".join(f"{label}: {text}" for label, _v, text in bars) or "—"
    body = format_html_join(
        "",
        '<text x="0" y="{}" font-size="12">{}</text>'
        '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}</title></rect>'
        '<text x="{}" y="{}" font-size="12">{}</text>',
        rows,
    )
    return format_html(
        '<svg id="{}" role="img" aria-labelledby="{}-title {}-desc" width="{}" height="{}" '
        'viewBox="0 0 {} {}" xmlns="http://www.w3.org/2000/svg">'
        '<title id="{}-title">{}</title><desc id="{}-desc">{}</desc>{}</svg>',
        chart_id,
        chart_id,
        chart_id,
        WIDTH,
        height,
        WIDTH,
        height,
        chart_id,
        title,
        chart_id,
        description,
        body or mark_safe(""),
    )
