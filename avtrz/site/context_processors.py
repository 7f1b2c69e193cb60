from django.conf import settings
from django.http import HttpRequest


def product(request: HttpRequest) -> dict[str, str]:
    """Values every page may show: the public base URL and the MCP connector URL."""
    return {
        "public_base_url": settings.PUBLIC_BASE_URL,
        "connector_url": f"{settings.PUBLIC_BASE_URL}/mcp",
    }
