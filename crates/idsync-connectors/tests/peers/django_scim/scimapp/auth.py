"""Bearer-token authentication for the SCIM endpoint (the token comes from the environment)."""
import hmac
import os


class ServiceAccount:
    is_authenticated = True
    is_anonymous = False


class BearerTokenMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.token = os.environ.get("PEER_TOKEN", "")

    def __call__(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if self.token and header.startswith("Bearer ") and hmac.compare_digest(
            header[len("Bearer "):].encode(), self.token.encode()
        ):
            request.user = ServiceAccount()
        return self.get_response(request)
