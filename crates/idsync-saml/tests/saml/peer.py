"""SAML peers for idsync-saml's tests, driven by JSON on stdin, answering JSON on stdout.

forge        a Response signed with signxml (a real XML signature library), then tampered with
             as the scenario says (signature wrapping, comment injection...): the attacks.
idp-respond  pysaml2's IdP (signing through xmlsec1) answers our SP's AuthnRequest URL.
sp-request   pysaml2's SP makes an AuthnRequest (HTTP-Redirect) for our IdP.
sp-accept    pysaml2's SP validates our IdP's Response.
c14n         lxml's (libxml2's) exclusive canonicalization of a document, to compare ours with.
"""
import base64
import copy
import datetime
import json
import os
import sys
import tempfile
import urllib.parse

from lxml import etree

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"
NS = {"samlp": SAMLP, "saml": SAML, "ds": DS}


def instant(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_assertion(p):
    now = p["now"]
    # Entra writes the assertion (and its signature) in default namespaces.
    a = etree.Element("{%s}Assertion" % SAML, nsmap={None: SAML} if p.get("entra_shape") else {"saml": SAML})
    a.set("ID", p.get("assertion_id", "_assertion1"))
    a.set("Version", "2.0")
    a.set("IssueInstant", instant(now))
    etree.SubElement(a, "{%s}Issuer" % SAML).text = p["issuer"]
    subject = etree.SubElement(a, "{%s}Subject" % SAML)
    nid = etree.SubElement(subject, "{%s}NameID" % SAML)
    nid.set("Format", p.get("name_id_format", "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"))
    nid.text = p["name_id"]
    sc = etree.SubElement(subject, "{%s}SubjectConfirmation" % SAML)
    sc.set("Method", "urn:oasis:names:tc:SAML:2.0:cm:bearer")
    scd = etree.SubElement(sc, "{%s}SubjectConfirmationData" % SAML)
    irt = p.get("assertion_in_response_to", p.get("in_response_to"))
    if irt:
        scd.set("InResponseTo", irt)
    scd.set("NotOnOrAfter", instant(now + p.get("lifetime", 300)))
    scd.set("Recipient", p.get("recipient", p["acs"]))
    cond = etree.SubElement(a, "{%s}Conditions" % SAML)
    cond.set("NotBefore", instant(now - 5 + p.get("not_before_offset", 0)))
    cond.set("NotOnOrAfter", instant(now + p.get("lifetime", 300)))
    ar = etree.SubElement(cond, "{%s}AudienceRestriction" % SAML)
    etree.SubElement(ar, "{%s}Audience" % SAML).text = p.get("audience", p["sp_entity"])
    st = etree.SubElement(a, "{%s}AuthnStatement" % SAML)
    st.set("AuthnInstant", instant(now - 10))
    st.set("SessionIndex", "_session1")
    ctx = etree.SubElement(etree.SubElement(st, "{%s}AuthnContext" % SAML), "{%s}AuthnContextClassRef" % SAML)
    ctx.text = "urn:oasis:names:tc:SAML:2.0:ac:classes:Password"
    attrs = etree.SubElement(a, "{%s}AttributeStatement" % SAML)
    if p.get("structured_attribute"):
        # eduPersonTargetedID's shape: a NameID inside the AttributeValue.
        at = etree.SubElement(attrs, "{%s}Attribute" % SAML)
        at.set("Name", "urn:oid:1.3.6.1.4.1.5923.1.1.1.10")
        etree.SubElement(etree.SubElement(at, "{%s}AttributeValue" % SAML), "{%s}NameID" % SAML).text = "x"
    for name, values in p.get("attributes", {}).items():
        at = etree.SubElement(attrs, "{%s}Attribute" % SAML)
        at.set("Name", name)
        for v in values:
            etree.SubElement(at, "{%s}AttributeValue" % SAML).text = v
    return a


def build_response(p, assertion):
    entra = p.get("entra_shape")
    r = etree.Element("{%s}Response" % SAMLP, nsmap={"samlp": SAMLP} if entra else {"samlp": SAMLP, "saml": SAML})
    r.set("ID", p.get("response_id", "_response1"))
    r.set("Version", "2.0")
    r.set("IssueInstant", instant(p["now"]))
    r.set("Destination", p.get("destination", p["acs"]))
    if p.get("in_response_to"):
        r.set("InResponseTo", p["in_response_to"])
    etree.SubElement(r, "{%s}Issuer" % SAML, nsmap={None: SAML} if entra else None).text = p["issuer"]
    status = etree.SubElement(r, "{%s}Status" % SAMLP)
    etree.SubElement(status, "{%s}StatusCode" % SAMLP).set("Value", p.get("status", "urn:oasis:names:tc:SAML:2.0:status:Success"))
    if p.get("status_message"):
        etree.SubElement(status, "{%s}StatusMessage" % SAMLP).text = p["status_message"]
    if assertion is not None and not p.get("no_assertion"):
        r.append(assertion)
    return r


def sign(element, key, cert, default_ns=False):
    from signxml import XMLSigner, methods
    from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod

    if not default_ns:
        # The placeholder puts the signature after the Issuer, where the SAML schema wants it.
        issuer = element.find("{%s}Issuer" % SAML)
        placeholder = etree.Element("{%s}Signature" % DS, nsmap={"ds": DS})
        placeholder.set("Id", "placeholder")
        issuer.addnext(placeholder)
    signer = XMLSigner(
        method=methods.enveloped,
        signature_algorithm=SignatureMethod.RSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    if default_ns:
        # Entra's shape: the Signature in the default xmldsig namespace (signxml appends it).
        signer.namespaces = {None: DS}
    signed = signer.sign(element, key=key.encode(), cert=cert, reference_uri=element.get("ID"))
    return signed


def strip_signature(el):
    for s in el.findall("{%s}Signature" % DS):
        el.remove(s)


def evil_copy(assertion, p, keep_id=False, keep_signature=False):
    evil = copy.deepcopy(assertion)
    if not keep_id:
        evil.set("ID", "_evil")
    if not keep_signature:
        strip_signature(evil)
    evil.find(".//{%s}NameID" % SAML).text = p.get("evil_name_id", "admin@corp.example")
    return evil


def forge(p):
    key, cert = p["key_pem"], p["cert_pem"]
    if p.get("signer") == "other":
        key, cert = p["other_key_pem"], p["other_cert_pem"]
    scenario = p.get("scenario", "legit")
    assertion = build_assertion(p)
    if p.get("sign_assertion", True):
        assertion = sign(assertion, key, cert, default_ns=p.get("entra_shape", False))
    response = build_response(p, assertion)
    if p.get("sign_response", False):
        response = sign(response, key, cert)
    a = response.find("{%s}Assertion" % SAML)

    if scenario == "legit":
        pass
    elif scenario == "comment_injection":
        # Signed for admin@corp.evil.com; a comment now splits the text where a naive reader stops.
        nid = a.find(".//{%s}NameID" % SAML)
        head, tail = nid.text.split(".", 1)
        nid.text = head
        comment = etree.Comment("")
        comment.tail = "." + tail
        nid.append(comment)
    elif scenario == "wrap_extensions":
        # XSW: the signed assertion hidden in Extensions, an evil one where it is read.
        ext = etree.Element("{%s}Extensions" % SAMLP)
        response.find("{%s}Issuer" % SAML).addnext(ext)
        response.remove(a)
        ext.append(a)
        response.append(evil_copy(a, p))
    elif scenario == "wrap_extensions_same_id":
        # Same, the evil copy keeping the ID and the signature: two elements hold that ID.
        ext = etree.Element("{%s}Extensions" % SAMLP)
        response.find("{%s}Issuer" % SAML).addnext(ext)
        response.remove(a)
        ext.append(a)
        response.append(evil_copy(a, p, keep_id=True, keep_signature=True))
    elif scenario == "wrap_in_object":
        # XSW: the evil assertion keeps the signature, which now carries the signed assertion in
        # a ds:Object.
        evil = evil_copy(a, p, keep_signature=True)
        sig = evil.find("{%s}Signature" % DS)
        obj = etree.SubElement(sig, "{%s}Object" % DS)
        response.remove(a)
        obj.append(a)
        response.append(evil)
    elif scenario == "wrap_in_evil":
        # XSW: the signed assertion becomes a child of the evil assertion (same place in the tree).
        evil = evil_copy(a, p)
        response.replace(a, evil)
        evil.append(a)
    elif scenario == "evil_before":
        a.addprevious(evil_copy(a, p))
    elif scenario == "evil_after":
        a.addnext(evil_copy(a, p))
    elif scenario == "duplicate_id_in_extensions":
        # The signed assertion where it is read, an unsigned one holding the same ID elsewhere.
        ext = etree.Element("{%s}Extensions" % SAMLP)
        response.find("{%s}Issuer" % SAML).addnext(ext)
        ext.append(evil_copy(a, p, keep_id=True))
    elif scenario == "replace_in_signed_response":
        # The Response is signed: its assertion swapped for an evil unsigned one.
        response.replace(a, evil_copy(a, p))
    elif scenario == "response_wraps_evil_assertion":
        # A signed Response (assertion unsigned) gets an evil unsigned assertion beside its own.
        a.addprevious(evil_copy(a, p))
    elif scenario == "wrap_response":
        # XSW on the Response: an evil Response whose Signature is the signed one's, and the
        # signed Response kept inside the evil one's Extensions.
        evil = copy.deepcopy(response)
        evil.set("ID", "_evilresponse")
        evil_a = evil.find("{%s}Assertion" % SAML)
        evil_a.find(".//{%s}NameID" % SAML).text = p.get("evil_name_id", "admin@corp.example")
        ext = etree.Element("{%s}Extensions" % SAMLP)
        evil.find("{%s}Issuer" % SAML).addnext(ext)
        ext.append(response)
        response = evil
    elif scenario == "strip_signatures":
        for s in response.iter("{%s}Signature" % DS):
            s.getparent().remove(s)
            break
    else:
        raise SystemExit("unknown scenario " + scenario)
    xml = etree.tostring(response)
    return {"response": base64.b64encode(xml).decode(), "xml": xml.decode()}


def write(tmp, name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def query_param(url, name):
    return urllib.parse.parse_qs(urllib.parse.urlparse(url).query)[name][0]


def idp_respond(p, tmp):
    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
    from saml2.config import IdPConfig
    from saml2.saml import NAMEID_FORMAT_PERSISTENT, NameID
    from saml2.server import Server
    from saml2.saml import AUTHN_PASSWORD_PROTECTED
    from saml2.xmldsig import DIGEST_SHA1, DIGEST_SHA256, SIG_RSA_SHA1, SIG_RSA_SHA256

    conf = {
        "entityid": p["idp_entity"],
        "service": {
            "idp": {
                "endpoints": {"single_sign_on_service": [(p["sso_url"], BINDING_HTTP_REDIRECT)]},
                "policy": {"default": {"lifetime": {"minutes": 5}, "name_form": "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"}},
                "sign_response": True,
                "sign_assertion": True,
            }
        },
        "key_file": write(tmp, "idp.key", p["key_pem"]),
        "cert_file": write(tmp, "idp.crt", p["cert_pem"]),
        "metadata": {"local": [write(tmp, "sp.xml", p["sp_metadata"])]},
        "xmlsec_binary": "/usr/bin/xmlsec1",
    }
    server = Server(config=IdPConfig().load(conf))
    req = server.parse_authn_request(query_param(p["request_url"], "SAMLRequest"), BINDING_HTTP_REDIRECT)
    message = req.message
    args = server.response_args(message, [BINDING_HTTP_POST])
    resp = server.create_authn_response(
        identity=p["identity"],
        name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text=p["name_id"]),
        authn={"class_ref": AUTHN_PASSWORD_PROTECTED, "authn_auth": p["idp_entity"]},
        sign_response=True,
        sign_assertion=True,
        sign_alg=SIG_RSA_SHA1 if p.get("sha1") else SIG_RSA_SHA256,
        digest_alg=DIGEST_SHA1 if p.get("sha1") else DIGEST_SHA256,
        **args,
    )
    xml = str(resp)
    return {
        "request_id": message.id,
        "request_issuer": message.issuer.text,
        "acs": args["destination"],
        "response": base64.b64encode(xml.encode()).decode(),
        "xml": xml,
    }


def sp_client(p, tmp):
    from saml2 import BINDING_HTTP_POST
    from saml2.client import Saml2Client
    from saml2.config import SPConfig
    from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

    conf = {
        "entityid": p["sp_entity"],
        "service": {
            "sp": {
                "endpoints": {"assertion_consumer_service": [(p["acs"], BINDING_HTTP_POST)]},
                "allow_unsolicited": p.get("allow_unsolicited", False),
                "want_response_signed": True,
                "want_assertions_signed": True,
                "authn_requests_signed": p.get("sign_requests", False),
            }
        },
        "key_file": write(tmp, "sp.key", p["key_pem"]),
        "cert_file": write(tmp, "sp.crt", p["cert_pem"]),
        "metadata": {"local": [write(tmp, "idp.xml", p["idp_metadata"])]},
        "xmlsec_binary": "/usr/bin/xmlsec1",
        "accepted_time_diff": 60,
        "allow_unknown_attributes": True,
        "signing_algorithm": SIG_RSA_SHA256,
        "digest_algorithm": DIGEST_SHA256,
    }
    return Saml2Client(config=SPConfig().load(conf))


def sp_request(p, tmp):
    import html
    import re

    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
    from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

    client = sp_client(p, tmp)
    post = p.get("binding") == "post"
    request_id, info = client.prepare_for_authenticate(
        entityid=p["idp_entity"],
        relay_state=p.get("relay_state", ""),
        binding=BINDING_HTTP_POST if post else BINDING_HTTP_REDIRECT,
        sigalg=SIG_RSA_SHA256,
        digest_alg=DIGEST_SHA256,
    )
    if post:
        # The auto-posting form pysaml2 renders: its SAMLRequest field.
        value = re.search(r'name="SAMLRequest" value="([^"]*)"', info["data"]).group(1)
        return {"request_id": request_id, "saml_request": html.unescape(value)}
    url = dict(info["headers"])["Location"]
    return {"request_id": request_id, "url": url}


def sp_accept(p, tmp):
    from saml2 import BINDING_HTTP_POST

    client = sp_client(p, tmp)
    outstanding = {p["request_id"]: "/"} if p.get("request_id") else {}
    resp = client.parse_authn_request_response(p["response"], BINDING_HTTP_POST, outstanding=outstanding)
    if resp is None:
        raise SystemExit("pysaml2 refused the response")
    return {
        "name_id": resp.name_id.text,
        "name_id_format": resp.name_id.format,
        "issuer": resp.issuer(),
        "in_response_to": resp.in_response_to,
        "identity": resp.get_identity(),
        "session_index": resp.session_info().get("session_index"),
    }


def main():
    command = sys.argv[1]
    p = json.load(sys.stdin)
    with tempfile.TemporaryDirectory() as tmp:
        if command == "c14n":
            root = etree.fromstring(p["xml"].encode())
            out = {"c14n": etree.tostring(root, method="c14n", exclusive=True, with_comments=p["with_comments"],
                                          inclusive_ns_prefixes=p["prefixes"] or None).decode()}
        elif command == "forge":
            out = forge(p)
        elif command == "idp-respond":
            out = idp_respond(p, tmp)
        elif command == "sp-request":
            out = sp_request(p, tmp)
        elif command == "sp-accept":
            out = sp_accept(p, tmp)
        else:
            raise SystemExit("unknown command " + command)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
