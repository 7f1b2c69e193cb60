"""Property tests for the publishable-key domain allow-list (Origin / Referer matching)."""

from hypothesis import given
from hypothesis import strategies as st

from avtrz.lib.hosts import host_matches
from workspaces.keys import origin_host


label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
hostname = st.lists(label, min_size=1, max_size=4).map(".".join)


@given(hostname, hostname)
def test_exact_entries_match_only_that_host(host, entry):
    assert host_matches(host, [entry]) == (host == entry)


@given(hostname, hostname)
def test_wildcards_match_strict_subdomains_only(host, suffix):
    expected = host.endswith("." + suffix)
    assert host_matches(host, [f"*.{suffix}"]) == expected


@given(hostname, hostname)
def test_a_lookalike_never_matches(entry, attacker):
    assert not host_matches(f"{entry}.{attacker}", [entry])
    assert not host_matches(f"{attacker}{entry}", [f"*.{entry}"])


header = st.one_of(
    st.text(), st.builds("{}{}".format, st.sampled_from(["http://[", "https://", "//", "http://a:"]), st.text())
)


@given(header, header)
def test_origin_parsing_never_fails(origin, referer):
    host = origin_host(origin, referer)
    assert host is None or host == host.lower()


@given(hostname, st.sampled_from(["https", "http"]), st.integers(1, 65535), st.text(max_size=20))
def test_origin_host_ignores_scheme_port_and_path(host, scheme, port, path):
    assert origin_host(f"{scheme}://{host}:{port}", None) == host
    assert origin_host(None, f"{scheme}://{host}/{path}") == host
