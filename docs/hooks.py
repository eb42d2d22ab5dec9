"""MkDocs hooks: the capability matrix from the drivers' own declarations, and Sphinx roles.

* ``<!-- capability-matrix -->`` in a page becomes the table ``ftbridge drivers matrix``
  prints, so the docs, ``drivers show``, the README and the kit read one source.
* The project's docstrings cross-reference with Sphinx roles (``:class:`~ftbridge.errors.X```),
  which Markdown shows as text: they are rendered as code, short names where ``~`` asks.
"""

from __future__ import annotations

import re
from typing import Any

MARKER = "<!-- capability-matrix -->"
ROLE = re.compile(r":(?:class|meth|func|mod|data|attr|exc|obj):<code>(~?)([\w.]+(?:\(\))?)</code>")


def on_page_markdown(markdown: str, **_: Any) -> str:
    if MARKER not in markdown:
        return markdown
    from ftbridge.cli.drivers import capability_matrix

    return markdown.replace(MARKER, capability_matrix())


def on_page_content(html: str, **_: Any) -> str:
    def code(m: re.Match[str]) -> str:
        name = m.group(2).rsplit(".", 1)[-1] if m.group(1) else m.group(2)
        return f"<code>{name}</code>"

    return ROLE.sub(code, html)
