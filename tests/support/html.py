"""Reading an HTML page as a person does: its text, its tables, the forms they can submit."""

from __future__ import annotations

import dataclasses
from html.parser import HTMLParser


@dataclasses.dataclass
class Form:
    """A form on the page: where it posts, what it sends, the button's label."""

    action: str
    method: str
    fields: dict[str, str]
    button: str = ""


class Page(HTMLParser):
    """A parsed page. ``text`` is what is visible; ``tags`` every element's name."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.forms: list[Form] = []
        self.links: list[str] = []
        self.sections: dict[str, list[list[str]]] = {}
        self._text: list[str] = []
        self._section: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._in_button = False
        self.feed(source)
        self.close()

    @property
    def text(self) -> str:
        return " ".join(" ".join(self._text).split())

    def rows(self, section: str) -> list[list[str]]:
        """The body rows of the tables in ``<section id=section>``, as cell texts."""
        return self.sections.get(section, [])

    def form(self, action: str) -> Form:
        """The one form that posts to ``action``."""
        (found,) = [form for form in self.forms if form.action == action]
        return found

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        attr = {k: v or "" for k, v in attrs}
        if tag == "section":
            self._section = attr.get("id")
        elif tag == "tr" and self._section is not None:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []
        elif tag == "form":
            self.forms.append(Form(attr.get("action", ""), attr.get("method", "get"), {}))
        elif tag == "input" and self.forms:
            self.forms[-1].fields[attr.get("name", "")] = attr.get("value", "")
        elif tag == "button":
            self._in_button = True
        elif tag == "a":
            self.links.append(attr.get("href", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._row is not None and self._cell is not None:
            self._row.append(" ".join(" ".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._row and self._section is not None:  # a header row has no td
                self.sections.setdefault(self._section, []).append(self._row)
            self._row = None
        elif tag == "section":
            self._section = None
        elif tag == "button":
            self._in_button = False

    def handle_data(self, data: str) -> None:
        if self.tags and self.tags[-1] in ("style", "script", "title"):
            return
        self._text.append(data)
        if self._cell is not None:
            self._cell.append(data)
        if self._in_button and self.forms:
            self.forms[-1].button += data.strip()
