"""griffe extension: Sphinx cross-reference roles in docstrings (``:mod:`emoshift.x```, ``:class:`~a.B```) shown as
inline code on the API page, the way Sphinx would print their text (``~`` keeps the last dotted part).

The docstrings keep the roles because they also read well in ``help()`` and IDEs; Markdown has no such syntax.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:mod|class|func|meth|attr|data|obj|exc|const):`(~?)([^`]+)`")


def _text(m: re.Match[str]) -> str:
    target = m.group(2)
    return f"`{target.rsplit('.', 1)[-1] if m.group(1) else target}`"


class RstRoles(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(_text, obj.docstring.value)
