"""Host allow-list matching, one rule for every list: API keys' domains, fetchable hosts."""

from __future__ import annotations

from collections.abc import Collection


def host_matches(host: str, patterns: Collection[str]) -> bool:
    """True if ``host`` equals a pattern, or is a subdomain of a ``*.suffix`` pattern.

    ``*.example.com`` matches ``a.example.com`` and ``a.b.example.com`` but not ``example.com``
    (list both when both are meant).
    """
    host = host.lower().rstrip(".")
    for pattern in patterns:
        pattern = pattern.lower().rstrip(".")
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif host == pattern:
            return True
    return False
