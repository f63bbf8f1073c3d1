"""A service's status as a small SVG badge (shields.io's look), to embed in a README or wiki.

Pure: ``badge_svg(label, status)`` returns the bytes; the snapshot publishes one per public
service. The status is written in the active language. Colours are chosen so the text keeps a
contrast of at least 4.5:1 (WCAG AA) on its background: white on the dark colours, near-black
on yellow, where white cannot reach it.
"""

from xml.sax.saxutils import escape, quoteattr

from django.utils.translation import gettext as _

from services.models import ServiceStatus

HEIGHT = 20
PADDING = 6  # each side of a text
LABEL_COLOUR = "#555"

# status: (background, text colour)
COLOURS = {
    ServiceStatus.OPERATIONAL: ("#2e7d32", "#fff"),  # green
    ServiceStatus.DEGRADED_PERFORMANCE: ("#f2c744", "#1f2328"),  # yellow
    ServiceStatus.PARTIAL_OUTAGE: ("#c2410c", "#fff"),  # orange
    ServiceStatus.MAJOR_OUTAGE: ("#b91c1c", "#fff"),  # red
    ServiceStatus.UNDER_MAINTENANCE: ("#1d4ed8", "#fff"),  # blue
}

# Widths in px of Verdana at 11 px (shields.io's font), by character; others count as WIDE.
WIDE = 7.5
_WIDTHS = {
    **dict.fromkeys("abcdeghknopqsuvxyz0123456789", 6.8),
    **dict.fromkeys("ijlI.,:;!'|", 3.5),
    **dict.fromkeys("frt()[]-/ ", 4.5),
    **dict.fromkeys("mwMW@%", 10.5),
}


def text_width(text):
    """An estimate of ``text``'s width, rounded up to whole pixels, erring wide so the text
    never overflows its box in a font a little broader than Verdana."""
    return int(sum(_WIDTHS.get(c, WIDE) for c in text) + 0.999)


def badge_svg(label, status):
    """The badge for a service called ``label`` whose status is ``status`` (a ServiceStatus
    value): label on grey, status on its colour, 20 px high."""
    try:
        status = ServiceStatus(status)
    except ValueError:
        raise ValueError(f"unknown service status {status!r}") from None
    background, foreground = COLOURS[status]
    text = str(status.label)
    left = text_width(label) + 2 * PADDING
    right = text_width(text) + 2 * PADDING
    width = left + right
    title = _("%(service)s: %(status)s") % {"service": label, "status": text}
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{HEIGHT}" '
        f'viewBox="0 0 {width} {HEIGHT}" role="img" aria-label={quoteattr(title)}>'
        f"<title>{escape(title)}</title>"
        f'<clipPath id="r"><rect width="{width}" height="{HEIGHT}" rx="3"/></clipPath>'
        f'<g clip-path="url(#r)">'
        f'<rect width="{left}" height="{HEIGHT}" fill="{LABEL_COLOUR}"/>'
        f'<rect x="{left}" width="{right}" height="{HEIGHT}" fill="{background}"/>'
        f"</g>"
        f'<g text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" '
        f'font-size="11">'
        f'<text x="{left / 2:g}" y="14" fill="#fff">{escape(label)}</text>'
        f'<text x="{left + right / 2:g}" y="14" fill="{foreground}">{escape(text)}</text>'
        f"</g></svg>"
    )
    return svg.encode("utf-8")
