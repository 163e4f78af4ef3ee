"""A griffe extension for the API pages: the docstrings' Sphinx roles as Markdown code.

The docstrings use reStructuredText roles (``:class:`~gml_ray.space.Dict```, ``:meth:`update```),
which Markdown would print as they are. They become code spans: `Dict`, `update`.
"""
from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|meth|func|mod|data|attr|exc|obj|const):`(~?)\.?([^`]+)`")


def _code(match: re.Match) -> str:
    short, target = match.group(1), match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


class RstRoles(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(_code, obj.docstring.value)
