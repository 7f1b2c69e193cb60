# The OAuth flow and the LinkedIn fixture server, shared with the admin tests.
from tests.avatars.conftest import eileen, linkedin
from tests.oauth.conftest import connect, register


__all__ = ["connect", "eileen", "linkedin", "register"]
