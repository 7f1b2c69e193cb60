"""Checks shared by every name a person types: workspace, key and user names.

Names end up in email subjects, headers and log lines, where a CR or LF breaks the message (Django
refuses such a header: the invitation email was a 500) or forges a line. Control characters are
refused where a name is entered, and `one_line` flattens any already stored before that.
"""

from __future__ import annotations

import re
import unicodedata

from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible


def _is_control(char: str) -> bool:
    # Cc: C0/C1 controls (CR, LF, TAB, NUL...); Zl/Zp: the Unicode line and paragraph separators.
    return unicodedata.category(char) in {"Cc", "Zl", "Zp"}


@deconstructible
class NoControlCharacters:
    message = "Use a single line without control characters."
    code = "control_characters"

    def __call__(self, value: object) -> None:
        if isinstance(value, str) and any(_is_control(char) for char in value):
            raise ValidationError(self.message, code=self.code)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NoControlCharacters)


no_control_characters = NoControlCharacters()

_CONTROL_RUN = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def one_line(text: str) -> str:
    """`text` with every run of control characters replaced by one space (for subjects and headers)."""
    return _CONTROL_RUN.sub(" ", text).strip()
