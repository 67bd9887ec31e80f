//! Keys made once per test binary, the Python peers (target/saml-venv, installed by
//! ./scripts/peers), and a service provider configured like one trusting Entra.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use idsync_saml::{
    IdpDescriptor, MemoryReplayCache, MemorySentRequests, NameIdFormat, ResponseCheck, SamlError,
    SamlLogin, ServiceProvider, ServiceProviderConfig, SignatureRequirement, SigningKey,
};
use serde_json::{json, Value};
use time::OffsetDateTime;

pub const IDP_ENTITY: &str = "https://sts.windows.net/11bb11bb-cc22-dd33-ee44-55ff55ff55ff/";
pub const IDP_SSO: &str =
    "https://login.microsoftonline.com/11bb11bb-cc22-dd33-ee44-55ff55ff55ff/saml2";
pub const SP_ENTITY: &str = "https://idsync.example.com/sso/saml";
pub const SP_ACS: &str = "https://idsync.example.com/sso/saml/acs";

pub fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_796_000_000).unwrap()
}

pub fn rng() -> rand::rngs::StdRng {
    use rand::SeedableRng;
    rand::rngs::StdRng::seed_from_u64(44)
}

fn key(slot: &'static OnceLock<SigningKey>, name: &str) -> SigningKey {
    slot.get_or_init(|| {
        let mut rng = rand::rngs::OsRng;
        SigningKey::generate(
            &mut rng,
            name,
            now() - time::Duration::days(1),
            time::Duration::days(365),
        )
        .unwrap()
    })
    .clone()
}

/// The upstream IdP's key (Entra's, in the tests).
pub fn idp_key() -> SigningKey {
    static K: OnceLock<SigningKey> = OnceLock::new();
    key(&K, "idp")
}

/// A key nobody trusts.
pub fn other_key() -> SigningKey {
    static K: OnceLock<SigningKey> = OnceLock::new();
    key(&K, "attacker")
}

/// Our own key (idsync's, as SP or IdP).
pub fn our_key() -> SigningKey {
    static K: OnceLock<SigningKey> = OnceLock::new();
    key(&K, "idsync")
}

pub fn pem(key: &SigningKey) -> (String, String) {
    (
        key.private_key_pem().unwrap().to_string(),
        key.certificate().to_pem().unwrap(),
    )
}

fn venv_python() -> PathBuf {
    let python =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/saml-venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run ./scripts/peers",
        python.display()
    );
    python
}

/// Runs `peer.py COMMAND` with `input` on stdin and answers its JSON.
pub fn peer(command: &str, input: &Value) -> Value {
    try_peer(command, input).unwrap_or_else(|e| panic!("peer.py {command} failed: {e}"))
}

/// Runs `peer.py COMMAND`: its JSON, or its error output when it failed.
pub fn try_peer(command: &str, input: &Value) -> Result<Value, String> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/saml/peer.py");
    let mut child = Command::new(venv_python())
        .arg(script)
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        return Err(format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    Ok(serde_json::from_slice(&out.stdout).unwrap())
}

pub fn descriptor() -> IdpDescriptor {
    IdpDescriptor {
        entity_id: IDP_ENTITY.into(),
        sso_url: IDP_SSO.into(),
        signing_certificates: vec![idp_key().certificate().clone()],
    }
}

pub fn sp_config(require: SignatureRequirement, allow_unsolicited: bool) -> ServiceProviderConfig {
    ServiceProviderConfig {
        entity_id: SP_ENTITY.into(),
        acs_url: SP_ACS.into(),
        name_id_format: Some(NameIdFormat::Persistent),
        signing_key: None,
        require,
        allow_unsolicited,
        clock_skew: time::Duration::seconds(60),
    }
}

pub const ASSERTION_SIGNED: SignatureRequirement = SignatureRequirement {
    response: false,
    assertion: true,
};
pub const RESPONSE_SIGNED: SignatureRequirement = SignatureRequirement {
    response: true,
    assertion: false,
};

pub fn sp(require: SignatureRequirement) -> ServiceProvider {
    ServiceProvider::new(sp_config(require, false), descriptor()).unwrap()
}

/// A Response forged by signxml for `REQUEST_ID` (Entra-like claims), tampered with as
/// `scenario` says; `extra` overrides the defaults.
pub fn forge(scenario: &str, extra: Value) -> String {
    let (key_pem, cert_pem) = pem(&idp_key());
    let (other_key_pem, other_cert_pem) = pem(&other_key());
    let mut input = json!({
        "scenario": scenario,
        "key_pem": key_pem, "cert_pem": cert_pem,
        "other_key_pem": other_key_pem, "other_cert_pem": other_cert_pem,
        "issuer": IDP_ENTITY, "sp_entity": SP_ENTITY, "acs": SP_ACS,
        "in_response_to": REQUEST_ID,
        "now": now().unix_timestamp(),
        "name_id": "alice@corp.example",
        "attributes": {
            "http://schemas.microsoft.com/identity/claims/objectidentifier": ["0d7f7b4e-3c1a-4d5e-9f00-aaaabbbbcccc"],
            "http://schemas.microsoft.com/identity/claims/tenantid": ["11bb11bb-cc22-dd33-ee44-55ff55ff55ff"],
            "http://schemas.microsoft.com/identity/claims/displayname": ["Alice Example"],
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress": ["alice@corp.example"],
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name": ["alice@corp.example"],
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname": ["Alice"],
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname": ["Example"],
            "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups": ["6e8c1a7e-0000-4000-8000-000000000001", "6e8c1a7e-0000-4000-8000-000000000002"],
        },
    });
    for (k, v) in extra.as_object().unwrap() {
        input[k] = v.clone();
    }
    peer("forge", &input)["response"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub const REQUEST_ID: &str = "_request0123456789abcdef";

/// A login attempt's state: the request we sent (REQUEST_ID) and the replay cache.
pub struct Session {
    pub requests: MemorySentRequests,
    pub replay: MemoryReplayCache,
}

impl Session {
    pub fn new() -> Self {
        let mut requests = MemorySentRequests::new(100);
        requests.insert(REQUEST_ID, now() + time::Duration::minutes(10), now());
        Self {
            requests,
            replay: MemoryReplayCache::new(100),
        }
    }

    pub fn validate(
        &mut self,
        sp: &ServiceProvider,
        response: &str,
    ) -> Result<SamlLogin, SamlError> {
        self.validate_at(sp, response, now())
    }

    pub fn validate_at(
        &mut self,
        sp: &ServiceProvider,
        response: &str,
        at: OffsetDateTime,
    ) -> Result<SamlLogin, SamlError> {
        sp.validate_post(
            response,
            ResponseCheck {
                now: at,
                requests: &mut self.requests,
                replay: &mut self.replay,
            },
        )
    }
}

pub const OUR_IDP_ENTITY: &str = "https://idsync.example.com/sso/idp";
pub const OUR_IDP_SSO: &str = "https://idsync.example.com/sso/idp/sso";
pub const JIRA_ENTITY: &str = "https://jira.example.com";
pub const JIRA_ACS: &str = "https://jira.example.com/plugins/servlet/samlconsumer";

pub fn registered_sp(entity_id: &str, acs_url: &str) -> idsync_saml::RegisteredSp {
    idsync_saml::RegisteredSp {
        entity_id: entity_id.into(),
        acs_url: acs_url.into(),
        name_id_format: NameIdFormat::Unspecified,
        request_certificates: Vec::new(),
        require_signed_requests: false,
    }
}

pub fn our_idp(sps: Vec<idsync_saml::RegisteredSp>) -> idsync_saml::IdentityProvider {
    idsync_saml::IdentityProvider::new(idsync_saml::IdentityProviderConfig {
        entity_id: OUR_IDP_ENTITY.into(),
        sso_url: OUR_IDP_SSO.into(),
        signing_key: our_key(),
        also_published: Vec::new(),
        service_providers: sps,
        assertion_lifetime: time::Duration::minutes(5),
        request_max_age: time::Duration::minutes(10),
        clock_skew: time::Duration::seconds(60),
    })
    .unwrap()
}

pub fn alice() -> idsync_saml::SamlUser {
    idsync_saml::SamlUser {
        name_id: "alice".into(),
        username: "alice".into(),
        email: Some("alice@corp.example".into()),
        display_name: Some("Alice <Example> & Co".into()),
        groups: vec!["jira-software-users".into(), "R&D \"core\"".into()],
        session_index: "_sess-1".into(),
        authn_instant: now() - time::Duration::seconds(2),
    }
}
