//! `[sso]`: idsync as the single sign-on broker (issue 19): the OpenID provider the products
//! trust, the identity providers it signs users in at (`[sso.upstreams.<name>]`), and the
//! products registered with it (`[sso.clients.<name>]`). Checked in `check/sso.rs`.

use crate::Secret;
use std::collections::BTreeMap;
use std::time::Duration;

/// `[sso]`.
#[derive(Debug, Clone)]
pub struct SsoConfig {
    /// `issuer`: idsync's public base URL as the products and the browsers reach it, without a
    /// trailing slash. It is the OpenID issuer: discovery is at
    /// `{issuer}/.well-known/openid-configuration`, the endpoints under `{issuer}/sso/`.
    pub issuer: String,
    /// `key_rotation`: a new signing key this often.
    pub key_rotation: Duration,
    /// `key_overlap`: how long the replaced key stays published.
    pub key_overlap: Duration,
    /// `saml_key_rotation`: how long the SAML identity provider's signing key signs before
    /// the next one takes over.
    pub saml_key_rotation: Duration,
    /// `saml_key_overlap`: how long the next SAML key is published before it signs, and the
    /// replaced one after (the products pin a certificate: their admins update it meanwhile).
    pub saml_key_overlap: Duration,
    /// `code_ttl`: how long an authorization code may wait to be redeemed.
    pub code_ttl: Duration,
    /// `token_ttl`: the ID and access tokens' lifetime.
    pub token_ttl: Duration,
    /// `login_timeout`: how long the user may take at the upstream identity provider.
    pub login_timeout: Duration,
    /// `sign_in_rate`: sign-ins one client address may start per second (at the upstream,
    /// for every product and protocol); 0 is no limit.
    pub sign_in_rate: f64,
    /// `sign_in_burst`: sign-ins one address may start at once before `sign_in_rate` applies
    /// (a company behind one NAT address starts many in the morning).
    pub sign_in_burst: u32,
    /// `max_pending_sign_ins`: sign-ins in progress at the upstreams kept at most; a new one
    /// beyond is refused (503) until some finish or expire.
    pub max_pending_sign_ins: u64,
    pub upstreams: BTreeMap<String, SsoUpstreamConfig>,
    /// The upstreams of `style = "saml"` (a SAML 2.0 identity provider such as Entra's
    /// enterprise application): names are unique across both maps.
    pub saml_upstreams: BTreeMap<String, SsoSamlUpstreamConfig>,
    pub clients: BTreeMap<String, SsoClientConfig>,
    /// `[sso.saml_clients.<name>]`: products that sign in to idsync by SAML 2.0 (idsync is
    /// their identity provider: metadata at `{issuer}/sso/saml-idp/metadata`).
    pub saml_clients: BTreeMap<String, SsoSamlClientConfig>,
}

/// `[sso.saml_clients.<name>]`: a SAML service provider registered with idsync's IdP.
#[derive(Debug, Clone)]
pub struct SsoSamlClientConfig {
    pub name: String,
    /// `entity_id`: the service provider's, as its AuthnRequests name it.
    pub entity_id: String,
    /// `acs_url`: where the Response is posted (exactly this; a request naming another is
    /// refused).
    pub acs_url: String,
    pub upstream: String,
    /// The flow whose group names the product receives.
    pub flow: String,
}

impl SsoConfig {
    /// The source an upstream of either protocol signs users in to.
    pub fn upstream_source(&self, name: &str) -> Option<&str> {
        self.upstreams
            .get(name)
            .map(|u| u.source.as_str())
            .or_else(|| self.saml_upstreams.get(name).map(|u| u.source.as_str()))
    }
}

/// `[sso.upstreams.<name>] style = "saml"`: a SAML 2.0 identity provider idsync signs users in
/// at as a service provider (HTTP-Redirect AuthnRequests, HTTP-POST responses).
#[derive(Debug, Clone)]
pub struct SsoSamlUpstreamConfig {
    pub name: String,
    /// `metadata`: the identity provider's metadata file (Entra's federation metadata XML).
    pub metadata_file: std::path::PathBuf,
    /// Its content, read when the configuration is.
    pub metadata: String,
    /// `entity_id`: ours, as registered at the identity provider (the Audience it writes).
    /// Default: `{issuer}/sso/saml/<name>`.
    pub entity_id: Option<String>,
    /// `signed`: which signatures the response must carry (`"assertion"`, Entra's default;
    /// `"response"`; `"both"`).
    pub require_response_signature: bool,
    pub require_assertion_signature: bool,
    /// The source whose directory a sign-in through this upstream updates.
    pub source: String,
    /// Directory attribute → SAML attribute name.
    pub claims: BTreeMap<String, String>,
    pub clock_skew: Duration,
}

/// The SAML attributes Entra sends, mapped by default (directory attribute → attribute name).
pub fn default_saml_claims() -> BTreeMap<String, String> {
    [
        (
            "userName",
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
        ),
        (
            "emails",
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
        ),
        (
            "displayName",
            "http://schemas.microsoft.com/identity/claims/displayname",
        ),
        (
            "name.givenName",
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
        ),
        (
            "name.familyName",
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
        ),
    ]
    .iter()
    .map(|(a, c)| ((*a).to_string(), (*c).to_string()))
    .collect()
}

impl SsoConfig {
    pub const DEFAULT_KEY_ROTATION: Duration = Duration::from_secs(90 * 86_400);
    pub const DEFAULT_KEY_OVERLAP: Duration = Duration::from_secs(2 * 86_400);
    pub const DEFAULT_SAML_KEY_ROTATION: Duration = Duration::from_secs(365 * 86_400);
    pub const DEFAULT_SAML_KEY_OVERLAP: Duration = Duration::from_secs(30 * 86_400);
    pub const DEFAULT_CODE_TTL: Duration = Duration::from_secs(60);
    pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(600);
    pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(600);
    pub const DEFAULT_SIGN_IN_RATE: f64 = 20.0;
    pub const DEFAULT_SIGN_IN_BURST: u32 = 200;
    pub const DEFAULT_MAX_PENDING_SIGN_INS: u64 = 100_000;
}

/// The rules of an upstream identity provider's tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamStyle {
    /// Entra ID (v2 endpoints): `tid` must be the tenant, `oid` is the user.
    Entra { tenant_id: String },
    /// An Azure AD B2C user flow: `tfp`/`acr` must be the policy, `emails`, no groups.
    B2c { policy: String },
    /// Any OpenID provider: `sub` is the user, `groups` when it is a list.
    Generic,
}

/// `[sso.upstreams.<name>]`: an OpenID provider idsync signs users in at.
#[derive(Debug, Clone)]
pub struct SsoUpstreamConfig {
    pub name: String,
    pub style: UpstreamStyle,
    /// Where discovery is read: `{authority}/.well-known/openid-configuration`.
    pub authority: String,
    /// The issuer every token must name exactly.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// `client_auth = "post" | "basic"`.
    pub client_auth_basic: bool,
    /// Scopes asked besides `openid`.
    pub scopes: Vec<String>,
    /// The source whose directory a login through this upstream updates.
    pub source: String,
    /// Directory attribute (`userName`, `displayName`, `emails`, `name.givenName`,
    /// `name.familyName`, or any other name: a custom attribute) → the claim that fills it.
    pub claims: BTreeMap<String, String>,
    pub clock_skew: Duration,
    /// Connect and whole-request bound of each call to the provider.
    pub timeout: Duration,
    /// A CA certificate (PEM) to trust besides the system's, for a provider whose certificate
    /// a private CA issued.
    pub ca_file: Option<std::path::PathBuf>,
}

/// `[sso.clients.<name>]`: a product that signs its users in through idsync.
#[derive(Debug, Clone)]
pub struct SsoClientConfig {
    pub name: String,
    pub client_id: String,
    /// `None`: a public client (`public = true`), which must use PKCE.
    pub client_secret: Option<Secret>,
    pub require_pkce: bool,
    /// Compared exactly.
    pub redirect_uris: Vec<String>,
    /// The upstream that signs this product's users in.
    pub upstream: String,
    /// The flow whose group rules give the group names the product receives.
    pub flow: String,
    /// What `sub` carries: the user's name in the directory (`username`, what Atlassian's SSO
    /// app reads by default) or the user's id at the upstream (`id`).
    pub subject: ClientSubject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientSubject {
    Username,
    Id,
}

/// The claims a style maps by default (directory attribute → claim).
pub fn default_claims(style: &UpstreamStyle) -> BTreeMap<String, String> {
    let pairs: &[(&str, &str)] = match style {
        UpstreamStyle::B2c { .. } => &[
            ("userName", "emails"),
            ("emails", "emails"),
            ("displayName", "name"),
            ("name.givenName", "given_name"),
            ("name.familyName", "family_name"),
        ],
        UpstreamStyle::Entra { .. } | UpstreamStyle::Generic => &[
            ("userName", "preferred_username"),
            ("emails", "email"),
            ("displayName", "name"),
            ("name.givenName", "given_name"),
            ("name.familyName", "family_name"),
        ],
    };
    pairs
        .iter()
        .map(|(a, c)| ((*a).to_string(), (*c).to_string()))
        .collect()
}
