"""Tool argument errors in the product's words.

The SDK validates a call's arguments with pydantic and would hand the model the validator's dump
("1 validation error for get_profile_avatarArguments size Input should be …
[type=literal_error…] For further information visit https://errors.pydantic.dev/…"). Each argument
error is one plain sentence instead, with `/v1/avatar`'s words where it has them
(`avtrz.avatars.api`, `avtrz.avatars.normalize`); the rules about the values themselves (exactly one of
linkedin_url or username, what a profile URL looks like) are the engine's and answer from `lookups`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from avtrz.avatars.api import SIZES


SIZE_MESSAGE = f"size must be one of {', '.join(map(str, SIZES))}."


def _names(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def unknown_arguments(tool: str, schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> str | None:
    """A sentence naming the first argument the tool does not take, or None."""
    known = list(schema.get("properties", {}))
    unknown = [name for name in arguments if name not in known]
    if not unknown:
        return None
    if not known:
        return f"{tool} takes no arguments; remove {unknown[0]}."
    return f"{tool} has no argument {unknown[0]}; it takes {_names(known)}."


def validation_message(tool: str, schema: Mapping[str, Any], error: ValidationError) -> str:
    """One sentence for the first invalid argument, in the schema's order."""
    order = list(schema.get("properties", {}))
    fields = [str(problem["loc"][0]) if problem["loc"] else "" for problem in error.errors()]
    fields.sort(key=lambda name: order.index(name) if name in order else len(order))
    field = fields[0] if fields else ""
    if field == "size":
        return SIZE_MESSAGE
    if field == "linkedin_url":
        return "linkedin_url must be a string, e.g. https://www.linkedin.com/in/janedoe."
    if field == "username":
        return "username must be a string, e.g. janedoe."
    if field:
        return f"{field} is not valid for {tool}."
    return f"The arguments for {tool} are not valid."
