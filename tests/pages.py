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


class FormScan(HTMLParser):
    """The forms of a page and what a browser would submit for each as rendered: text inputs
    and hidden fields with their values, checked boxes, selected options, textarea text.
    ``forms`` is a list of (action, method, [(name, value), ...], [field names])."""

    def __init__(self, html):
        super().__init__(convert_charrefs=True)
        self.forms = []
        self._form = None
        self._select = None
        self._textarea = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._form = (attrs.get("action", ""), attrs.get("method", "get").lower(), [], [])
            self.forms.append(self._form)
            return
        if self._form is None or "name" not in attrs and tag != "option":
            return
        data, names = self._form[2], self._form[3]
        if tag == "input":
            kind = attrs.get("type", "text").lower()
            if kind in ("submit", "button", "image", "reset", "file"):
                return
            names.append(attrs["name"])
            if kind in ("checkbox", "radio") and "checked" not in attrs:
                return
            data.append((attrs["name"], attrs.get("value", "on" if kind == "checkbox" else "")))
        elif tag == "select":
            names.append(attrs["name"])
            self._select = attrs["name"]
        elif tag == "option" and self._select and "selected" in attrs:
            data.append((self._select, attrs.get("value", "")))
        elif tag == "textarea":
            names.append(attrs["name"])
            self._textarea = [attrs["name"], ""]

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea and self._form is not None:
            # A browser drops the newline right after <textarea>; so does Django's widget.
            self._form[2].append((self._textarea[0], self._textarea[1].removeprefix("\n")))
            self._textarea = None

    def handle_data(self, data):
        if self._textarea is not None:
            self._textarea[1] += data
