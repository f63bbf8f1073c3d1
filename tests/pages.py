"""Reading a rendered admin page as a browser would: which elements and attributes it has, what
its scripts contain, and the document an iframe's ``srcdoc`` holds."""

from html.parser import HTMLParser

# Attributes through which markup runs script: an element carrying one is script, whatever it is.
EVENT_ATTRIBUTE_PREFIX = "on"


class PageScan(HTMLParser):
    """Every start tag with its (unescaped) attributes, the text inside each <script>, and the
    text a reader sees inside each <pre>."""

    def __init__(self, html):
        super().__init__(convert_charrefs=True)
        self.elements = []  # (tag, {attribute: value})
        self.scripts = []
        self.preformatted = []
        self._open = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, {name: value or "" for name, value in attrs}))
        if tag in ("script", "pre"):
            self._open = tag
            (self.scripts if tag == "script" else self.preformatted).append("")

    def handle_endtag(self, tag):
        if tag == self._open:
            self._open = None

    def handle_data(self, data):
        if self._open == "script":
            self.scripts[-1] += data
        elif self._open == "pre":
            self.preformatted[-1] += data

    def find(self, tag):
        return [attrs for name, attrs in self.elements if name == tag]

    def event_handlers(self):
        """(tag, attribute, value) for every inline event handler on the page."""
        return [
            (tag, name, value)
            for tag, attrs in self.elements
            for name, value in attrs.items()
            if name.startswith(EVENT_ATTRIBUTE_PREFIX)
        ]


def assert_no_injected_script(html, marker):
    """Neither the page nor any iframe document without a sandbox runs script containing
    ``marker``; a sandboxed iframe (``sandbox=""``) runs no script at all, so its document may
    hold anything."""
    page = PageScan(html)
    assert not [s for s in page.scripts if marker in s], "a <script> carries the hostile text"
    assert not [h for h in page.event_handlers() if marker in h[2]], "an event handler was injected"
    assert not [a for a in page.find("script") if marker in a.get("src", "")]
    for frame in page.find("iframe"):
        if frame.get("sandbox") != "":
            assert_no_injected_script(frame.get("srcdoc", ""), marker)
    return page
