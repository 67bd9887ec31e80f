"""Drive the Graph simulator with Microsoft's own Python clients: azure-identity gets a token
over HTTPS (client credentials, with a secret and with a certificate), msgraph-sdk lists users through its page iterator, reads a
delta round to its delta link, gets a 404 as an ODataError, and (with SIM_MEMBER_USER) posts
getMemberObjects and pages through its answer. Prints one JSON line."""

import asyncio
import json
import os
import sys
import traceback

from azure.core.credentials import AccessToken
from azure.identity import CertificateCredential, ClientSecretCredential
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from msgraph import GraphServiceClient
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph_core.tasks.page_iterator import PageIterator
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.users.item.get_member_objects.get_member_objects_post_request_body import (
    GetMemberObjectsPostRequestBody,
)

ROOT = os.environ["SIM_ROOT"]
TENANT = os.environ["SIM_TENANT"]
CLIENT_ID = os.environ["SIM_CLIENT_ID"]
SECRET = os.environ["SIM_SECRET"]
CERT = os.environ["SIM_CERT"]
SCOPE = "https://graph.microsoft.com/.default"


class AsyncFromSync:
    """msgraph-sdk wants an async credential; this one hands out azure-identity's tokens."""

    def __init__(self, cred):
        self.cred = cred

    async def get_token(self, *scopes, **kwargs) -> AccessToken:
        return self.cred.get_token(*scopes)

    async def close(self):
        pass

    async def __aenter__(self):
        return self

    async def __aexit__(self, *args):
        pass


async def main() -> None:
    out = {}
    cred = ClientSecretCredential(
        TENANT, CLIENT_ID, SECRET, authority=ROOT, disable_instance_discovery=True
    )
    token = cred.get_token(SCOPE)
    out["token"] = bool(token.token) and token.expires_on > 0

    # A certificate credential: MSAL signs a client assertion with the key in the PEM file.
    cert_cred = CertificateCredential(
        TENANT, CLIENT_ID, certificate_path=CERT, authority=ROOT, disable_instance_discovery=True
    )
    cert_token = cert_cred.get_token(SCOPE)
    out["certificate_token"] = bool(cert_token.token) and cert_token.expires_on > 0

    auth = AzureIdentityAuthenticationProvider(
        AsyncFromSync(cred), scopes=[SCOPE], allowed_hosts=["127.0.0.1"]
    )
    adapter = GraphRequestAdapter(auth)
    client = GraphServiceClient(request_adapter=adapter)
    # After the client: its constructor sets the public Graph host.
    client.request_adapter.base_url = ROOT + "/v1.0"

    first = await client.users.get()
    names = []

    def collect(user) -> bool:
        names.append(user.user_principal_name)
        return True

    iterator = PageIterator(first, adapter)
    await iterator.iterate(collect)
    out["users"] = len(names)
    out["distinct_users"] = len(set(names))
    out["first_page"] = len(first.value)

    delta = await client.users.delta.get()
    items = list(delta.value)
    pages = 1
    while delta.odata_next_link:
        delta = await client.users.delta.with_url(delta.odata_next_link).get()
        items.extend(delta.value)
        pages += 1
    out["delta_items"] = len(items)
    out["delta_pages"] = pages
    out["delta_link"] = bool(delta.odata_delta_link)

    try:
        await client.users.by_user_id("00000000-0000-0000-0000-00000000dead").get()
        out["not_found"] = None
    except ODataError as e:
        out["not_found"] = [e.response_status_code, e.error.code if e.error else None]

    # getMemberObjects: a POST whose answer is a paged collection of ids; the page iterator
    # follows @odata.nextLink with GETs.
    member = os.environ.get("SIM_MEMBER_USER")
    if member:
        body = GetMemberObjectsPostRequestBody(security_enabled_only=True)
        config = RequestConfiguration()
        config.headers.add("Prefer", "odata.maxpagesize=2")
        first = await client.users.by_user_id(member).get_member_objects.post(
            body, request_configuration=config
        )
        out["member_objects_first_page"] = len(first.value)
        out["member_objects_next"] = bool(first.odata_next_link)
        ids = []

        def take(i) -> bool:
            ids.append(i)
            return True

        await PageIterator(first, adapter).iterate(take)
        out["member_objects"] = sorted(ids)

    print(json.dumps(out))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception:  # the test prints this
        traceback.print_exc()
        sys.exit(1)
