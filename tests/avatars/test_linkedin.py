import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from avtrz.avatars.linkedin import (
    Outcome,
    ParsedProfile,
    classify_response,
    parse_profile_page,
    photo_expiry,
    photo_version,
    upgrade_photo_url,
)


FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "linkedin"
PHOTO = (
    "https://media.licdn.com/dms/image/v2/D4E03AQH8x9Yk2Lm3Qg/profile-displayphoto-shrink_200_200/"
    "profile-displayphoto-shrink_200_200/0/1716832153410?e=1767830400&v=beta&t=AbC123"
)


def page(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def test_json_ld_graph_profile():
    profile = parse_profile_page(page("profile_graph.html"), "https://www.linkedin.com/in/alex-rivera/")
    assert profile == ParsedProfile(
        name="Alex Rivera",
        headline="Staff Software Engineer · Co-founder",
        summary="I build robots that sort recycling. Before Acme I worked on warehouse automation.",
        industry=None,
        location="San Francisco Bay Area",
        company="Acme Robotics",
        open_to_work=None,
        photo_url=PHOTO,
    )


def test_open_graph_only_profile():
    profile = parse_profile_page(page("profile_og_only.html"), "https://in.linkedin.com/in/priya-natarajan-42a1b7")
    assert profile.name == "Priya Natarajan"
    assert profile.headline is None
    assert profile.summary == "Clinical data lead. #OpenToWork"
    assert profile.company == "Northwind Health"
    assert profile.location == "Bengaluru"
    assert profile.open_to_work is True
    assert profile.photo_url.startswith("https://media.licdn.com/dms/image/v2/C5603AQFz9k1Qw2e3Rt/")
    assert "&v=beta&t=Zx9-Yw8" in profile.photo_url  # &amp; decoded


def test_json_ld_only_picks_the_person_of_this_page():
    """A list with two Persons: the page's own, nested in ProfilePage.mainEntity, wins over a
    shallower 'people also viewed' entry because its url is this page (spelled differently)."""
    html = page("profile_jsonld_only.html")
    profile = parse_profile_page(html, "https://www.linkedin.com/in/jörg-müller-7b2a/")
    assert profile.name == "Jörg Müller"
    assert profile.headline == "Leiter Einkauf bei Stahlwerk Nord"  # headline beats jobTitle
    assert profile.industry == "Maschinenbau"
    assert profile.location == "Hamburg, Deutschland"
    assert profile.company == "Stahlwerk Nord"
    assert profile.photo_url.startswith("https://media.licdn.com/dms/image/v2/D4D03AQJOERG01/")
    # Without a matching URL the shallowest Person is taken.
    assert parse_profile_page(html, "https://www.linkedin.com/in/someone-else/").name == "Sam Lee"


def test_json_ld_is_preferred_over_open_graph():
    profile = parse_profile_page(page("profile_both.html"), "https://www.linkedin.com/in/dana-okafor/")
    assert profile.name == "Dana O. Okafor"
    assert profile.headline == "Head of Risk"
    assert profile.company == "Lagos Fintech Ltd"
    assert profile.location == "Lagos, Lagos State, Nigeria"
    assert "C4D03AQJSONLD01" in profile.photo_url


def test_placeholder_photo_is_no_photo():
    profile = parse_profile_page(page("profile_no_photo.html"), "https://uk.linkedin.com/in/chris-doe-9f8e7d")
    assert (profile.name, profile.location, profile.photo_url) == ("Chris Doe", "Leeds", None)


def test_relative_and_non_http_images():
    html = '<meta property="og:title" content="A B | LinkedIn"><meta property="og:image" content="{}">'
    base = "https://www.linkedin.com/in/a-b/"
    assert parse_profile_page(html.format("/img/a.jpg"), base).photo_url == "https://www.linkedin.com/img/a.jpg"
    assert parse_profile_page(html.format("data:image/png;base64,AAAA"), base).photo_url is None
    assert parse_profile_page(html.format("javascript:alert(1)"), base).photo_url is None


def test_empty_page_parses_to_nothing():
    assert parse_profile_page("", "https://www.linkedin.com/in/x/") == ParsedProfile()


@given(st.text(max_size=2000))
def test_parser_never_raises_on_garbage(html):
    parse_profile_page(html, "https://www.linkedin.com/in/x/")
    classify_response(200, html, "https://www.linkedin.com/in/x/")


JSON_LD_KEYS = [
    "@type",
    "@graph",
    "name",
    "image",
    "address",
    "jobTitle",
    "worksFor",
    "url",
    "sameAs",
    "contentUrl",
    "mainEntity",
]
json_ld = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.just("Person"),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(JSON_LD_KEYS), inner, max_size=5),
    max_leaves=30,
)


@given(json_ld)
def test_parser_survives_any_json_ld_shape(data):
    html = f'<script type="application/ld+json">{json.dumps(data)}</script>'
    parse_profile_page(html, "https://www.linkedin.com/in/x/")
    classify_response(200, html, "https://www.linkedin.com/in/x/")


@pytest.mark.parametrize(
    ("status", "fixture", "final_url", "outcome"),
    [
        (200, "profile_graph.html", "https://www.linkedin.com/in/alex-rivera", Outcome.OK),
        (200, "profile_og_only.html", "https://in.linkedin.com/in/priya-natarajan-42a1b7", Outcome.OK),
        (200, "profile_jsonld_only.html", "https://de.linkedin.com/in/j%C3%B6rg-m%C3%BCller", Outcome.OK),
        (200, "profile_no_photo.html", "https://uk.linkedin.com/in/chris-doe-9f8e7d", Outcome.OK),
        (999, "status_999.html", "https://www.linkedin.com/in/alex-rivera", Outcome.BLOCKED),
        (200, "status_999.html", "https://www.linkedin.com/in/alex-rivera", Outcome.BLOCKED),
        (429, "profile_graph.html", "https://www.linkedin.com/in/alex-rivera", Outcome.BLOCKED),
        (403, "", "https://www.linkedin.com/in/alex-rivera", Outcome.BLOCKED),
        (200, "authwall.html", "https://www.linkedin.com/in/alex-rivera", Outcome.BLOCKED),
        (200, "authwall.html", "https://www.linkedin.com/authwall?trk=bf&sessionRedirect=x", Outcome.BLOCKED),
        (200, "login.html", "https://www.linkedin.com/login?fromSignIn=true", Outcome.BLOCKED),
        (200, "login.html", "https://www.linkedin.com/in/alex-rivera", Outcome.BLOCKED),
        (200, "profile_graph.html", "https://www.linkedin.com/checkpoint/challenge/AgF", Outcome.BLOCKED),
        (200, "", "https://www.linkedin.com/uas/login?session_redirect=x", Outcome.BLOCKED),
        (200, "", "https://www.linkedin.com/in/alex-rivera", Outcome.BLOCKED),  # empty 200 = challenge
        (404, "", "https://www.linkedin.com/in/nobody-here", Outcome.NOT_FOUND),
        (410, "", "https://www.linkedin.com/in/nobody-here", Outcome.NOT_FOUND),
        (200, "", "https://www.linkedin.com/in/unavailable/", Outcome.NOT_FOUND),
        (500, "", "https://www.linkedin.com/in/alex-rivera", Outcome.ERROR),
        (503, "", "https://www.linkedin.com/in/alex-rivera", Outcome.ERROR),
        (400, "", "https://www.linkedin.com/in/alex-rivera", Outcome.ERROR),
        (302, "", "https://www.linkedin.com/in/alex-rivera", Outcome.ERROR),
    ],
)
def test_classify_response(status, fixture, final_url, outcome):
    html = page(fixture) if fixture else ""
    assert classify_response(status, html, final_url) == outcome


def test_meta_refresh_to_the_wall_is_blocked():
    html = '<meta http-equiv="refresh" content="0; URL=\'https://www.linkedin.com/authwall?trk=x\'">'
    assert classify_response(200, html, "https://www.linkedin.com/in/a-b") == Outcome.BLOCKED


def test_outcomes_are_plain_strings():
    assert Outcome.BLOCKED == "blocked"
    assert {o.value for o in Outcome} == {"ok", "not_found", "blocked", "error"}


@pytest.mark.parametrize(
    ("url", "upgraded"),
    [
        (PHOTO, PHOTO.replace("shrink_200_200", "shrink_800_800")),
        (
            (
                "https://media.licdn.com/dms/image/v2/D4D03AQJOERG01/profile-displayphoto-scale_100_100/B4DZbbbb/0/"
                "1722000000000?e=2147483647&v=beta&t=jm2"
            ),
            (
                "https://media.licdn.com/dms/image/v2/D4D03AQJOERG01/profile-displayphoto-scale_800_800/B4DZbbbb/0/"
                "1722000000000?e=2147483647&v=beta&t=jm2"
            ),
        ),
        (
            "https://media.licdn.com/dms/image/C4E03AQGx/profile-displayphoto-shrink_100_100/0?e=1566000000&t=x",
            "https://media.licdn.com/dms/image/C4E03AQGx/profile-displayphoto-shrink_800_800/0?e=1566000000&t=x",
        ),
        (
            "https://media-exp1.licdn.com/dms/image/C5603AQF/profile-framedphoto-shrink_400_400/0/1?e=1&t=y",
            "https://media-exp1.licdn.com/dms/image/C5603AQF/profile-framedphoto-shrink_800_800/0/1?e=1&t=y",
        ),
    ],
)
def test_upgrade_photo_url(url, upgraded):
    assert upgrade_photo_url(url) == upgraded
    assert upgrade_photo_url(upgraded) == upgraded


@pytest.mark.parametrize(
    "url",
    [
        PHOTO.replace("shrink_200_200", "shrink_800_800"),
        "https://media.licdn.com/dms/image/v2/D4E10AQ/image-shrink_800/0/1?e=1&t=z",  # a post image
        "https://static.licdn.com/aero-v1/sc/h/9c8pery4andzj6ohjkjp54ma2",
        "https://evil.example/profile-displayphoto-shrink_100_100/x.jpg",
        "not a url",
    ],
)
def test_upgrade_leaves_other_urls_alone(url):
    assert upgrade_photo_url(url) == url


def test_photo_expiry():
    assert photo_expiry(PHOTO) == datetime(2026, 1, 8, tzinfo=UTC)
    assert photo_expiry(PHOTO).tzinfo is UTC
    end_of_2038 = datetime(2038, 1, 19, 3, 14, 7, tzinfo=UTC)  # e=2147483647: "never", in practice
    assert photo_expiry(PHOTO.replace("e=1767830400", "e=2147483647")) == end_of_2038
    assert photo_expiry(PHOTO.split("?")[0]) is None
    assert photo_expiry(PHOTO.replace("e=1767830400", "e=soon")) is None
    assert photo_expiry(PHOTO.replace("e=1767830400", "e=" + "9" * 40)) is None


def test_photo_version_ignores_size_expiry_and_signature():
    version = photo_version(PHOTO)
    assert version == "licdn:D4E03AQH8x9Yk2Lm3Qg:1716832153410"
    assert photo_version(upgrade_photo_url(PHOTO)) == version
    resigned = PHOTO.replace("e=1767830400", "e=1770000000").replace("t=AbC123", "t=Other")
    assert photo_version(resigned) == version
    assert photo_version(PHOTO.replace("media.licdn.com", "media-exp1.licdn.com")) == version


def test_photo_version_changes_with_a_new_upload():
    assert photo_version(PHOTO.replace("1716832153410", "1733000000000")) != photo_version(PHOTO)
    assert photo_version(PHOTO.replace("D4E03AQH8x9Yk2Lm3Qg", "D4E03AQNEWPHOTO")) != photo_version(PHOTO)


def test_photo_version_of_old_and_foreign_urls():
    old = "https://media.licdn.com/dms/image/C4E03AQGx/profile-displayphoto-shrink_100_100/0?e=1566000000&t=x"
    assert photo_version(old) == "licdn:C4E03AQGx"
    foreign = photo_version("https://cdn.example/photos/a.jpg?sig=1")
    assert foreign.startswith("sha256:")
    assert foreign == photo_version("https://cdn.example/photos/a.jpg?sig=2#x")
    assert foreign != photo_version("https://cdn.example/photos/b.jpg")
