"""Status badges: valid SVG a browser and a screen reader can use, 20 px high, in the reader's
language, sized to their text."""

import xml.etree.ElementTree as ET

import pytest
from django.utils import translation

from services.models import ServiceStatus
from statuspage.badges import badge_svg

SVG = "{http://www.w3.org/2000/svg}"


def parse(raw):
    return ET.fromstring(raw)


def fills(root):
    return [r.get("fill") for r in root.iter(f"{SVG}rect") if r.get("fill")]


def texts(root):
    return [t.text for t in root.iter(f"{SVG}text")]


def test_a_badge_is_an_accessible_svg_20_px_high():
    root = parse(badge_svg("Website", ServiceStatus.OPERATIONAL))
    assert root.tag == f"{SVG}svg"
    assert root.get("height") == "20"
    assert root.get("role") == "img"
    assert root.get("aria-label") == "Website: Operational"
    assert root.find(f"{SVG}title").text == "Website: Operational"
    assert texts(root) == ["Website", "Operational"]
    _clip, label_rect, status_rect = root.iter(f"{SVG}rect")
    assert int(label_rect.get("width")) + int(status_rect.get("width")) == int(root.get("width"))


def test_names_are_escaped():
    name = 'Mail & <Chat> "EU"'
    raw = badge_svg(name, ServiceStatus.MAJOR_OUTAGE)
    assert b"<Chat>" not in raw
    root = parse(raw)
    assert texts(root)[0] == name
    assert root.get("aria-label") == f"{name}: Major outage"
    assert root.find(f"{SVG}title").text == f"{name}: Major outage"


def test_each_status_has_its_own_colour():
    colours = {status: fills(parse(badge_svg("Website", status)))[-1] for status in ServiceStatus}
    assert len(set(colours.values())) == len(ServiceStatus)
    assert colours[ServiceStatus.OPERATIONAL] == "#2e7d32"
    assert colours[ServiceStatus.MAJOR_OUTAGE] == "#b91c1c"
    # The label's grey is none of them.
    assert "#555" not in colours.values()


def test_the_width_follows_the_text():
    short = parse(badge_svg("API", ServiceStatus.OPERATIONAL))
    long = parse(badge_svg("Customer portal and billing", ServiceStatus.OPERATIONAL))
    assert int(long.get("width")) - int(short.get("width")) > 100
    wider_status = parse(badge_svg("API", ServiceStatus.DEGRADED_PERFORMANCE))
    assert int(wider_status.get("width")) > int(short.get("width"))


def test_the_status_is_in_the_active_language():
    with translation.override("ro"):
        root = parse(badge_svg("Website", ServiceStatus.PARTIAL_OUTAGE))
    assert texts(root)[1] == "Întrerupere parțială"
    assert "Întrerupere parțială" in root.get("aria-label")


def test_an_unknown_status_is_refused():
    with pytest.raises(ValueError):
        badge_svg("Website", "sort_of_fine")
