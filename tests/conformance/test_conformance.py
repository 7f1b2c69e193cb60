"""The official MCP conformance suite (`@modelcontextprotocol/conformance`, pinned in package.json)
against the real app: its server scenarios against `/mcp`, at every protocol version each one
covers, and its authorization-server scenarios against the issuer.

The suite sends no Authorization header, so the server scenarios reach `/mcp` through a loopback
proxy that adds a valid access token (`tests/conformance/proxy.py`); the token comes from the
whole OAuth flow, as a client gets one. The suite is a dev dependency that `make test` installs
(`python -m tests.conformance.node install`); without it the tests skip locally and fail in CI.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests import services
from tests.conformance import node
from tests.conformance.proxy import bearer_proxy
from tests.mcp.conftest import access_token
from tests.oauth.oauthutil import consent_decision
from tests.services import sign_in


pytestmark = pytest.mark.django_db(transaction=True)

BATCH = Path(__file__).resolve().parent / "batch.mjs"

# The server scenarios that apply to a real server. The others exercise the suite's own fixture
# tools, prompts and resources (tools-call-*, prompts-*, resources-*, input-required-result-*,
# json-schema-2020-12, completion-complete...), which Avtrz does not have.
SERVER_SCENARIOS = (
    "server-initialize",
    "tools-list",
    "ping",
    "server-session-lifecycle",
    "dns-rebinding-protection",
    "caching",
    "http-header-validation",
    "server-stateless",
)
# Checks inside those scenarios that call the suite's fixture tools, with what they need. They
# cannot pass against a real server and are reported, not asserted. (Calling an unknown tool is a
# -32602 error, which the suite reports as "not testable"; a tool result with isError, as the
# server answered before, let the last two pass without testing anything.)
FIXTURE_CHECKS = {
    "sep-2575-server-rejects-undeclared-capability": "the fixture tool test_missing_capability",
    "sep-2575-missing-capability-http-400": "the fixture tool test_missing_capability",
    "sep-2575-http-server-no-independent-requests-on-stream": "the fixture tool test_streaming_elicitation",
    "sep-2575-server-no-log-without-loglevel": "the fixture tool test_logging_tool",
}
# Checks the suite itself reports as not applicable to this server (SKIPPED), and why.
NOT_APPLICABLE = {
    "sep-2549-resources-read-caching-hints": "Avtrz has no resources to read",
    "sep-2575-server-sends-subscription-ack": "no subscriptions/listen: the tool list never changes",
    "sep-2575-server-tags-subscription-id": "no subscriptions/listen: the tool list never changes",
    "sep-2575-server-honors-notification-filter": "no subscriptions/listen: the tool list never changes",
    "sep-2575-server-sends-prompts-list-changed-on-subscription": "no listChanged advertised",
    "sep-2575-server-sends-tools-list-changed-on-subscription": "no listChanged advertised",
}
# Checks that call methods Avtrz does not serve: it has no prompts or resources and advertises
# neither capability, yet the caching scenario asks every list method regardless. "Method not
# found" (-32601) is the right answer there, and what the server-stateless scenario asks for: a
# server that answered them would have to declare the capabilities.
UNSERVED = {
    "sep-2549-prompts-list-caching-hints": "no prompts capability",
    "sep-2549-resources-list-caching-hints": "no resources capability",
    "sep-2549-resources-templates-list-caching-hints": "no resources capability",
}
PASSED = "SUCCESS"
# Notes, not verdicts: "no MCP-Session-Id" (stateless), so server-session-lifecycle does not apply.
INFORMATIONAL = "INFO"


@pytest.fixture
def suite() -> list[str]:
    """The command that runs the pinned suite with the wheel's Node.js."""
    executable = node.node()
    services.require(
        "MCP conformance suite",
        executable is not None and node.SUITE.exists(),
        "make test installs it: pip install -r requirements-dev.txt, then python -m tests.conformance.node install",
    )
    return [str(executable), str(node.SUITE)]


def versions_of(suite: list[str]) -> dict[str, list[str]]:
    """Each server scenario's protocol versions, as the suite lists them ("- tools-list [2025-06-18,...]")."""
    listing = subprocess.run(
        [*suite, "list", "--server"], env=node.environment(), capture_output=True, text=True, timeout=60, check=True
    ).stdout
    found = dict(re.findall(r"^\s*- (\S+) \[([^\]]*)\]", listing, re.MULTILINE))
    return {name: [version for version in found[name].split(",") if version[:1].isdigit()] for name in found}


def run(suite: list[str], runs: dict[str, list[str]], output: Path) -> dict[str, list[dict]]:
    """The checks of each labelled run of the suite's CLI (`node index.js <args>`), each run writing to a
    folder of its own under `output`. All run in one Node process, one after the other (batch.mjs): a
    Node start and a load of the suite cost more CPU than a short scenario run."""
    marker = f"=== conformance run {uuid.uuid4().hex} ==="
    folders = {label: output / label.replace("@", "-") for label in runs}
    arguments = []
    for label, args in runs.items():
        folders[label].mkdir(parents=True)
        arguments.append(json.dumps([*args, "-o", str(folders[label])]))
    executable, index = suite
    result = subprocess.run(
        [executable, str(BATCH), index, marker, *arguments],
        env=node.environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=240 + 60 * len(runs),
    )
    logs = result.stdout.split(f"{marker}\n")[1:]  # each run's output, in order
    if len(logs) < len(runs):  # the process ended early: what it printed last is what there is to see
        logs += [f"{result.stdout}\n(exit {result.returncode})"] * (len(runs) - len(logs))
    return {label: collect(folders[label], log) for label, log in zip(runs, logs, strict=True)}


def collect(output: Path, log: str) -> list[dict]:
    files = sorted(output.rglob("checks.json"))
    assert files, f"the suite wrote no results:\n{log[-4000:]}"
    return [check for file in files for check in json.loads(file.read_text())]


def verdict(checks: list[dict]) -> tuple[Counter, list[str]]:
    """Counts by status, and every check that neither passed nor is expected not to apply."""
    counts = Counter(check["status"] for check in checks)
    unexpected = []
    for check in checks:
        status, name = check["status"], check["id"]
        if status in (PASSED, INFORMATIONAL):
            continue
        if status == "SKIPPED" and name in NOT_APPLICABLE or status == "FAILURE" and name in FIXTURE_CHECKS:
            continue
        if status == "FAILURE" and name in UNSERVED and "-32601" in (check.get("errorMessage") or ""):
            continue
        unexpected.append(f"{status} {name}: {check.get('errorMessage') or check.get('description')}")
    return counts, unexpected


def report(request, line: str) -> None:
    """A line for the run's closing summary (tests/conftest.py), whichever worker ran the test."""
    request.node.user_properties.append(("summary", f"conformance {line}"))


def summary(label: str, counts: Counter) -> str:
    total = sum(counts.values())
    others = ", ".join(f"{count} {status.lower()}" for status, count in sorted(counts.items()) if status != PASSED)
    return f"{label}: {counts[PASSED]}/{total} checks passed" + (f" ({others})" if others else "")


def test_server_scenarios_pass_against_mcp(suite, live, alice, acme, tmp_path, request):
    versions = versions_of(suite)
    assert set(SERVER_SCENARIOS) <= set(versions), f"scenarios missing from the suite: {versions}"
    token = access_token(live, sign_in(live, alice))
    with bearer_proxy(urlsplit(live).port, token) as port:
        url = f"http://127.0.0.1:{port}/mcp"
        runs = {
            f"{scenario}@{version}": ["server", "--url", url, "--scenario", scenario, "--spec-version", version]
            for scenario in SERVER_SCENARIOS
            for version in versions[scenario]
        }
        results = run(suite, runs, tmp_path)

    failures = []
    overall = Counter()
    for label, checks in results.items():
        counts, unexpected = verdict(checks)
        overall += counts
        failures += [f"{label}: {line}" for line in unexpected]
        report(request, summary(label, counts))
    report(request, summary(f"server, {len(results)} scenario runs", overall))
    assert not failures, "\n".join(failures)
    assert overall[PASSED] > 0


def test_authorization_scenarios_pass_against_the_issuer(suite, live, alice, acme, tmp_path, request):
    callback_port = services.free_port()
    redirect_uri = f"http://127.0.0.1:{callback_port}/callback"
    output = tmp_path / "authorization"
    output.mkdir()
    browser = sign_in(live, alice)
    registered = requests.post(
        f"{live}/o/register/",
        json={
            "client_name": "MCP conformance suite",
            "redirect_uris": [redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        },
        timeout=10,
    )
    assert registered.status_code == 201, registered.text
    command = [
        *suite,
        "authorization",
        "--url",
        live,
        "--client-id",
        registered.json()["client_id"],
        "--resource",
        f"{live}/mcp",
        "--port",
        str(callback_port),
        "-o",
        str(output),
    ]
    # Both scenarios in one run: the code grant reads the endpoints the metadata scenario found.
    # The suite prints the authorization URL and waits for the browser to come back to its
    # callback server; the signed-in user approves on the consent screen.
    process = subprocess.Popen(
        command, env=node.environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    log: list[str] = []
    # The suite waits for its callback without a limit of its own: were the URL line never printed, or the
    # callback never reached, reading its output would wait for good. Killed, its output ends.
    watchdog = threading.Timer(120, process.kill)
    watchdog.start()
    try:
        for line in process.stdout:
            log.append(line)
            if line.startswith(f"{live}/o/authorize"):
                page = browser.get(line.strip(), allow_redirects=False, timeout=10)
                assert page.status_code == 200, page.text[:2000]
                decision = browser.post(
                    line.strip(), data=consent_decision(page.text), allow_redirects=False, timeout=10
                )
                assert decision.status_code == 302, decision.text[:2000]
                assert decision.headers["Location"].startswith(redirect_uri)
                requests.get(decision.headers["Location"], timeout=10)
        process.wait(timeout=60)
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()

    checks = collect(output, "".join(log))
    counts, unexpected = verdict(checks)
    report(request, summary("authorization server", counts))
    assert not unexpected, "\n".join(unexpected) + "\n" + "".join(log)[-4000:]
    assert {check["id"] for check in checks} >= {"authorization-server-metadata", "authorization-code-grant"}
