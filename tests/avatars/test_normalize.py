from urllib.parse import urlsplit

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from avtrz.avatars.normalize import InvalidProfileInput, normalize_profile_input, profile_url


@pytest.mark.parametrize(
    ("pasted", "handle"),
    [
        ("linkedin.com/in/alex-rivera", "alex-rivera"),
        ("https://www.linkedin.com/in/alex-rivera", "alex-rivera"),
        ("https://www.linkedin.com/in/alex-rivera/", "alex-rivera"),
        ("http://www.linkedin.com/in/alex-rivera", "alex-rivera"),
        ("www.linkedin.com/in/alex-rivera/", "alex-rivera"),
        ("//www.linkedin.com/in/alex-rivera", "alex-rivera"),
        ("  https://www.linkedin.com/in/alex-rivera  \n", "alex-rivera"),
        ("https://uk.linkedin.com/in/alex-rivera/?trk=x", "alex-rivera"),
        ("https://de.linkedin.com/in/alex-rivera?originalSubdomain=de", "alex-rivera"),
        ("https://m.linkedin.com/in/alex-rivera", "alex-rivera"),
        ("https://www.linkedin.com/mwlite/in/alex-rivera", "alex-rivera"),
        ("HTTPS://WWW.LINKEDIN.COM/IN/Alex-Rivera", "alex-rivera"),
        ("https://www.linkedin.com/in/Alex-Rivera-1a2b3c4d/", "alex-rivera-1a2b3c4d"),
        ("https://www.linkedin.com/in/alex-rivera#experience", "alex-rivera"),
        (
            (
                "https://www.linkedin.com/in/alex-rivera?utm_source=share&utm_campaign=share_via"
                "&utm_content=profile&utm_medium=ios_app"
            ),
            "alex-rivera",
        ),
        ("https://www.linkedin.com/in/alex-rivera/details/experience/", "alex-rivera"),
        ("https://www.linkedin.com/in/alex-rivera/recent-activity/all/", "alex-rivera"),
        ("https://www.linkedin.com/in/alex-rivera/overlay/contact-info/", "alex-rivera"),
        ("https://www.linkedin.com/in/alex-rivera/de", "alex-rivera"),  # secondary-language profile
        ("https://www.linkedin.com//in//alex-rivera//", "alex-rivera"),
        ("https://www.linkedin.com:443/in/alex-rivera", "alex-rivera"),
        ("https://www.linkedin.com./in/alex-rivera", "alex-rivera"),
        ("linkedin.com/in/jos%C3%A9-garc%C3%ADa-5b3a1", "josé-garcía-5b3a1"),
        ("linkedin.com/in/jos%c3%a9-garc%c3%ada-5b3a1", "josé-garcía-5b3a1"),
        ("linkedin.com/in/josé-garcía-5b3a1", "josé-garcía-5b3a1"),
        ("linkedin.com/in/jose\u0301-garci\u0301a-5b3a1", "josé-garcía-5b3a1"),  # NFD -> NFC
        ("linkedin.com/in/JOS%C3%89", "josé"),
        ("https://cn.linkedin.com/in/%E7%8E%8B%E5%B0%8F%E6%98%8E-12345", "王小明-12345"),
        ("https://www.linkedin.com/in/мария-иванова", "мария-иванова"),
        ("https://www.linkedin.com/in/محمد-علي-123", "محمد-علي-123"),
        ("https://in.linkedin.com/in/अनिल-कुमार", "अनिल-कुमार"),
        ("https://www.linkedin.com/in/john_smith", "john_smith"),
        ("https://www.linkedin.com/in/ACoAAB1x2y3z4ABCDEFGhijklmnop", "ACoAAB1x2y3z4ABCDEFGhijklmnop"),
    ],
)
def test_pasted_urls(pasted, handle):
    assert normalize_profile_input(pasted, None) == handle


@pytest.mark.parametrize(
    ("username", "handle"),
    [
        ("alex-rivera", "alex-rivera"),
        ("  Alex-Rivera ", "alex-rivera"),
        ("alex-rivera/", "alex-rivera"),
        ("jos%C3%A9-garc%C3%ADa", "josé-garcía"),
        ("josé-garcía", "josé-garcía"),
        ("王小明-12345", "王小明-12345"),
    ],
)
def test_usernames(username, handle):
    assert normalize_profile_input(None, username) == handle


def test_empty_strings_count_as_absent():
    assert normalize_profile_input("", "alex-rivera") == "alex-rivera"
    assert normalize_profile_input("linkedin.com/in/alex-rivera", "   ") == "alex-rivera"


@pytest.mark.parametrize(
    ("linkedin_url", "username", "field", "message"),
    [
        (None, None, None, "Give a linkedin_url or a username"),
        ("  ", "", None, "Give a linkedin_url or a username"),
        ("linkedin.com/in/alex", "alex", None, "not both"),
        ("https://www.linkedin.com/company/acme", None, "linkedin_url", "company page"),
        ("https://www.linkedin.com/school/mit/", None, "linkedin_url", "school page"),
        ("https://www.linkedin.com/showcase/acme-labs", None, "linkedin_url", "showcase page"),
        ("https://www.linkedin.com/posts/alex-rivera_hiring-activity-7123", None, "linkedin_url", "a post"),
        ("https://www.linkedin.com/feed/update/urn:li:activity:7123/", None, "linkedin_url", "feed post"),
        ("https://www.linkedin.com/pulse/why-avatars-alex-rivera", None, "linkedin_url", "an article"),
        ("https://www.linkedin.com/jobs/view/3912345678/", None, "linkedin_url", "job listing"),
        ("https://www.linkedin.com/groups/12345/", None, "linkedin_url", "a group"),
        ("https://www.linkedin.com/pub/alex-rivera/12/345/678", None, "linkedin_url", "/pub/"),
        ("https://www.linkedin.com/", None, "linkedin_url", "not a profile URL"),
        ("https://www.linkedin.com/help/linkedin", None, "linkedin_url", "not a profile URL"),
        ("https://www.linkedin.com/in/", None, "linkedin_url", "no handle after /in/"),
        ("https://www.linkedin.com/in", None, "linkedin_url", "no handle after /in/"),
        ("https://linkedin.com.evil.com/in/alex", None, "linkedin_url", "'linkedin.com.evil.com'"),
        ("https://evil.com/linkedin.com/in/alex", None, "linkedin_url", "'evil.com'"),
        ("https://linkedin.com@evil.com/in/alex", None, "linkedin_url", "'@'"),
        ("https://user:pw@www.linkedin.com/in/alex", None, "linkedin_url", "'@'"),
        ("https://notlinkedin.com/in/alex", None, "linkedin_url", "must be on linkedin.com"),
        ("https://www.linkedin.co/in/alex", None, "linkedin_url", "must be on linkedin.com"),
        ("https://api.www.linkedin.com/in/alex", None, "linkedin_url", "must be on linkedin.com"),
        ("https://xn--lnkedin-3ya.com/in/alex", None, "linkedin_url", "must be on linkedin.com"),
        ("https://lınkedin.com/in/alex", None, "linkedin_url", "must be on linkedin.com"),
        ("https://lnkd.in/dXyZ123", None, "linkedin_url", "short link"),
        ("https://www.linkedin.com:8443/in/alex", None, "linkedin_url", "port"),
        ("javascript:alert(1)//linkedin.com/in/alex", None, "linkedin_url", "http(s)"),
        ("ftp://www.linkedin.com/in/alex", None, "linkedin_url", "http(s)"),
        ("data:text/html,linkedin.com/in/alex", None, "linkedin_url", "http(s)"),
        ("https://[www.linkedin.com/in/alex", None, "linkedin_url", "not a valid URL"),
        ("https:///in/alex", None, "linkedin_url", "no host"),
        ("https://www.linkedin.com/in/" + "a" * 2100, None, "linkedin_url", "too long"),
        ("https://www.linkedin.com/in/al", None, "linkedin_url", "3 to 100 characters"),
        ("https://www.linkedin.com/in/" + "a" * 101, None, "linkedin_url", "3 to 100 characters"),
        ("https://www.linkedin.com/in/alex.rivera", None, "linkedin_url", "contains '.'"),
        ("https://www.linkedin.com/in/alex%20rivera", None, "linkedin_url", "contains ' '"),
        ("https://www.linkedin.com/in/alex%2Frivera", None, "linkedin_url", "contains '/'"),
        ("https://www.linkedin.com/in/alex%3Cscript%3E", None, "linkedin_url", "contains '<'"),
        ("https://www.linkedin.com/in/%FF%FEalex", None, "linkedin_url", "not valid UTF-8"),
        ("https://www.linkedin.com/in/alex%252Frivera", None, "linkedin_url", "contains '%'"),
        (None, "https://www.linkedin.com/in/alex", "username", "pass it as linkedin_url"),
        (None, "linkedin.com/in/alex", "username", "pass it as linkedin_url"),
        (None, "in/alex", "username", "pass it as linkedin_url"),
        (None, "@alex-rivera", "username", "contains '@'"),
        (None, "alex rivera", "username", "contains ' '"),
        (None, "al", "username", "3 to 100 characters"),
        (None, "x" * 3000, "username", "too long"),
    ],
)
def test_refusals(linkedin_url, username, field, message):
    with pytest.raises(InvalidProfileInput) as caught:
        normalize_profile_input(linkedin_url, username)
    assert caught.value.field == field
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_profile_url():
    assert profile_url("alex-rivera") == "https://www.linkedin.com/in/alex-rivera/"
    assert profile_url("josé-garcía") == "https://www.linkedin.com/in/jos%C3%A9-garc%C3%ADa/"
    with pytest.raises(ValueError):
        profile_url("Alex-Rivera")  # not canonical
    with pytest.raises(ValueError):
        profile_url("../company/acme")


# --- properties ---

handle_chars = st.one_of(
    st.characters(categories=("Ll", "Lu", "Lo", "Nd")),
    st.sampled_from("-_"),
)


@given(st.text(handle_chars, min_size=3, max_size=100))
@example("alex-rivera-1a2b3c")
@example("ǅemal")  # titlecase letter
@example("İstanbul-dev")  # lower() of İ adds a combining dot
def test_canonical_handles_round_trip(raw):
    try:
        handle = normalize_profile_input(None, raw)
    except InvalidProfileInput:
        assume(False)
    assert normalize_profile_input(profile_url(handle), None) == handle
    assert normalize_profile_input(None, handle) == handle
    assert normalize_profile_input(f"uk.linkedin.com/in/{handle}/details/?x=1", None) == handle


hosts = st.one_of(
    st.sampled_from(
        [
            "linkedin.com",
            "www.linkedin.com",
            "uk.linkedin.com",
            "m.linkedin.com",
            "linkedin.com.evil.com",
            "evil-linkedin.com",
            "linkedin.co",
            "evil.com",
            "127.0.0.1",
            "[::1]",
            "www.linkedin.com:443",
            "www.linkedin.com:8080",
            "linkedin.com@evil.com",
            "evil.com@linkedin.com",
            "evil.com\\@linkedin.com",
            "evil.com#@linkedin.com",
            "evil.com?.linkedin.com",
            "evil.com/.linkedin.com",
        ]
    ),
    st.from_regex(r"[a-z0-9.\-]{1,30}(\.linkedin\.com)?", fullmatch=True),
)
paths = st.one_of(
    st.sampled_from(["/in/alex-rivera", "/in/alex/", "/company/acme", "/", "", "/in/", "/pub/x/1/2/3"]),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40).map(lambda s: "/" + s),
)


@given(st.sampled_from(["https://", "http://", "//", "", "ftp://"]), hosts, paths)
def test_only_profile_paths_on_linkedin_hosts_are_accepted(scheme, host, path):
    text = scheme + host + path
    try:
        handle = normalize_profile_input(text, None)
    except InvalidProfileInput:
        return
    parts = urlsplit(text if "//" in scheme else "https://" + text)
    assert parts.hostname == "linkedin.com" or parts.hostname.endswith(".linkedin.com")
    segments = [s for s in parts.path.split("/") if s]
    if segments[0].lower() == "mwlite":
        segments = segments[1:]
    assert segments[0].lower() == "in"
    assert handle
    assert "/" not in handle


@given(st.one_of(st.none(), st.text(max_size=300)), st.one_of(st.none(), st.text(max_size=300)))
def test_any_input_either_normalizes_or_raises_invalid_profile_input(linkedin_url, username):
    try:
        handle, message = normalize_profile_input(linkedin_url, username), None
    except InvalidProfileInput as exc:
        handle, message = None, str(exc)
    if handle is None:
        assert message
    else:
        assert 3 <= len(handle) <= 100
