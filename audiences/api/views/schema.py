"""The OpenAPI 3 document of every endpoint Sift serves, readable without a token."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.renderers import OpenApiJsonRenderer
from drf_spectacular.views import SpectacularAPIView
from rest_framework.permissions import AllowAny


class OpenApiSchemaView(SpectacularAPIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    renderer_classes = [OpenApiJsonRenderer]


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """Documents Sift's bearer tokens (with Adobe's org and sandbox headers) in the schema."""

    target_class = "portal.api_auth.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "A Sift API token. Send `x-gw-ims-org-id` (the token's "
                               "organization) and `x-sandbox-name` (default: the default "
                               "sandbox) as Adobe's clients do."}
