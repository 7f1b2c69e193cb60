"""Issue 13: the publishable key tool's text names the workspace once ("Demo workspace workspace" before)."""

import pytest

from mcpserver import lookups
from tests.factories import WorkspaceFactory


pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("name", ["Demo workspace", "Acme"])
def test_the_key_text_names_the_workspace_once(name):
    workspace = WorkspaceFactory(name=name)
    text = lookups.publishable_key(workspace).content[0].text
    first = text.splitlines()[0]
    assert first.startswith(f"Publishable key of {name}: pk_")
    assert "workspace workspace" not in text
