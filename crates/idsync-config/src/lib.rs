//! `idsync.toml`: sources, targets and flows.
//!
//! The file is parsed with its spans kept and walked against the schema by hand, so that every
//! error is reported at once with its file, line, column and key path, rather than stopping at
//! the first. Unknown keys are errors. Strings may hold `${env:NAME}` and `${file:PATH}`
//! references, resolved at load time; secret values are kept in [`Secret`], which never prints.

mod check;
mod secret;
pub mod sso;

pub use secret::{Secret, SecretKey};
pub use sso::{
    ClientSubject, SsoClientConfig, SsoConfig, SsoSamlClientConfig, SsoSamlUpstreamConfig,
    SsoUpstreamConfig, UpstreamStyle,
};

use idsync_core::{DeprovisionAction, GroupDeletion, PlanOptions};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// Dotted key path, such as `flows.hr-to-jira.deprovision`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.key,
            self.message
        )
    }
}

/// Every problem found, in the order of the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    pub store: StoreConfig,
    pub server: ServerConfig,
    pub log: LogConfig,
    pub notifications: NotificationsConfig,
    pub sources: BTreeMap<String, SourceConfig>,
    pub targets: BTreeMap<String, TargetConfig>,
    pub flows: BTreeMap<String, FlowConfig>,
    /// `[sso]`: the single sign-on broker, when configured.
    pub sso: Option<SsoConfig>,
}

/// What idsync tells people about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NotifyEvent {
    /// A run held deprovisions above its flow's deletion threshold.
    Held,
    /// A flow's run failed after a good one.
    Failed,
    /// A flow was quarantined (or left quarantine).
    Quarantined,
}

impl NotifyEvent {
    pub const ALL: [NotifyEvent; 3] = [
        NotifyEvent::Held,
        NotifyEvent::Failed,
        NotifyEvent::Quarantined,
    ];
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "held" => Some(NotifyEvent::Held),
            "failed" => Some(NotifyEvent::Failed),
            "quarantined" => Some(NotifyEvent::Quarantined),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::Held => "held",
            NotifyEvent::Failed => "failed",
            NotifyEvent::Quarantined => "quarantined",
        }
    }
}

/// `[notifications]`: email through SMTP and a JSON webhook.
#[derive(Debug, Clone)]
pub struct NotificationsConfig {
    pub events: Vec<NotifyEvent>,
    pub email_to: Vec<String>,
    pub email_from: Option<String>,
    /// lettre's form: `smtp://host:25`, `smtp://host:587?tls=required` (STARTTLS),
    /// `smtps://host:465`.
    pub smtp_url: Option<String>,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<Secret>,
    pub webhook_url: Option<String>,
    /// Signs each webhook body: `X-Idsync-Signature: sha256=<HMAC-SHA256 hex>`.
    pub webhook_secret: Option<Secret>,
    pub timeout: Duration,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        NotificationsConfig {
            events: NotifyEvent::ALL.to_vec(),
            email_to: Vec::new(),
            email_from: None,
            smtp_url: None,
            smtp_username: None,
            smtp_password: None,
            webhook_url: None,
            webhook_secret: None,
            timeout: Duration::from_secs(15),
        }
    }
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub path: PathBuf,
    pub retention_days: u32,
    /// Seals the secrets idsync keeps in the store (none yet; decision 0023).
    pub secret_key: Option<SecretKey>,
    /// Earlier keys, kept to open what they sealed until `idsync secrets rotate`.
    pub previous_secret_keys: Vec<SecretKey>,
}

/// `[server]`: where `idsync serve` listens, its tokens, and what it allows a client.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub admin_token: Option<Secret>,
    /// Guards `/metrics`; without it `/metrics` takes the admin token (open without either).
    pub metrics_token: Option<Secret>,
    /// Connections served at once; beyond it a new connection closes the one idle longest, or
    /// waits in the listen backlog while every connection has a request in flight.
    pub max_connections: usize,
    /// A request's head (request line and headers) must arrive within this, counted from its
    /// first byte (from the accept for a connection's first request).
    pub header_timeout: Duration,
    /// A connection with no request in flight, or whose request body stopped arriving, is
    /// closed after this long without a byte.
    pub idle_timeout: Duration,
    /// Requests per second each SCIM token may make, sustained (0: no limit).
    pub scim_rate: f64,
    /// Requests a SCIM token may make at once above its rate.
    pub scim_burst: u32,
}

impl ServerConfig {
    pub const DEFAULT_LISTEN: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: Self::DEFAULT_LISTEN,
            admin_token: None,
            metrics_token: None,
            max_connections: 512,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            scim_rate: 200.0,
            scim_burst: 2000,
        }
    }
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub level: String,
    pub json: bool,
}

#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub name: String,
    pub directory: String,
    pub interval: Option<Duration>,
    pub kind: SourceKind,
    /// `login_wait`: how long a login waits for the user's flows to run before it proceeds
    /// (the runs carry on after). Sources that take logins: msgraph, scim, login.
    pub login_wait: Duration,
}

impl SourceConfig {
    /// The default `login_wait`.
    pub const DEFAULT_LOGIN_WAIT: Duration = Duration::from_secs(5);
}

#[derive(Debug, Clone)]
pub enum SourceKind {
    File(FileSourceConfig),
    /// Pushed to through idsync's SCIM endpoint.
    Scim(ScimSourceConfig),
    /// Microsoft Entra ID or Azure AD B2C through Microsoft Graph.
    MsGraph(MsGraphSourceConfig),
    /// `type = "login"`: a directory fed by logins alone (just in time).
    Login(LoginSourceConfig),
}

/// `[sources.x] type = "login"`: users (and their groups) arrive with their logins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginSourceConfig {
    /// `graph`: an msgraph source whose connection names group ids and resolves group
    /// overage (optional).
    pub graph: Option<String>,
}

/// `[sources.x] type = "scim"`: how the directory's SCIM endpoint behaves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScimSourceConfig {
    /// `generic`, or `atlassian-cloud`: the endpoint behaves as Atlassian Cloud's user
    /// provisioning API does (served at `/scim/directory/<directory>` too, pages of at most
    /// 100, no group renames, users of verified domains only, no bulk), to stand in for it.
    pub profile: ScimProfile,
    /// With `atlassian-cloud`: the organisation's verified domains (lowercase).
    pub verified_domains: Vec<String>,
}

/// How a Graph source signs in.
#[derive(Debug, Clone)]
pub enum GraphCredential {
    /// `client_secret`.
    Secret(Secret),
    /// `client_certificate` (PEM, read at load time) and, when the key is kept apart,
    /// `client_certificate_key`.
    Certificate {
        file: PathBuf,
        pem: Secret,
        key: Option<(PathBuf, Secret)>,
    },
}

/// `[sources.x] type = "msgraph"`.
#[derive(Debug, Clone)]
pub struct MsGraphSourceConfig {
    /// Tenant id or a verified domain.
    pub tenant: String,
    pub client_id: String,
    pub credential: GraphCredential,
    /// `global`, `usgov`, `usgov-dod` or `china`.
    pub cloud: String,
    /// Overrides of the cloud's login authority and Graph host (a simulator, a proxy).
    pub authority: Option<String>,
    pub graph_url: Option<String>,
    /// The scope token requests ask for; default `<graph_url>/.default` (right for every
    /// cloud). For a proxy or gateway in front of Graph that expects Graph's own scope.
    pub token_scope: Option<String>,
    /// Extra CA certificate to trust (PEM).
    pub ca_file: Option<PathBuf>,
    pub scope: MsGraphScope,
    /// Only groups whose display name matches this regular expression.
    pub group_filter: Option<String>,
    /// `userPrincipalName`, `mail` or `identity:<signInType>`.
    pub user_name: String,
    /// `objectId` or `identity:<signInType>` (B2C local accounts: issuer + issuerAssignedId).
    pub key: String,
    /// `extension_<appId>_<name>` attributes to read.
    pub extensions: Vec<String>,
    /// Azure AD B2C / External ID: no delta queries.
    pub b2c: bool,
    pub delta: bool,
    /// Resource units per 10 s the source allows itself.
    pub budget: u32,
    pub concurrency: usize,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MsGraphScope {
    All,
    Groups(Vec<String>),
    App(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Json,
    Csv,
}

#[derive(Debug, Clone)]
pub struct FileSourceConfig {
    pub format: FileFormat,
    pub path: Option<PathBuf>,
    pub users: Option<PathBuf>,
    pub groups: Option<PathBuf>,
    pub memberships: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct TargetConfig {
    pub name: String,
    /// Operations per second idsync sends this target, shared by every flow writing to it
    /// (0: unlimited).
    pub max_rate: f64,
    pub kind: TargetKind,
}

#[derive(Debug, Clone)]
pub enum TargetKind {
    Test(TestTargetConfig),
    Scim(ScimTargetConfig),
    /// Served by idsync itself as a Crowd-compatible directory (Atlassian Data Center products
    /// read it): nothing is pushed anywhere; the flow's ledger is the directory.
    Crowd(CrowdTargetConfig),
    Jira(JiraTargetConfig),
    Confluence(ConfluenceTargetConfig),
    Bamboo(BambooTargetConfig),
    Bitbucket(BitbucketTargetConfig),
}

/// `[targets.x] type = "bitbucket"`: Bitbucket Data Center's internal directory.
#[derive(Debug, Clone)]
pub struct BitbucketTargetConfig {
    pub url: String,
    pub auth: JiraAuth,
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
    pub concurrency: usize,
    /// Bitbucket adds each new user to its default group (`addToDefaultGroup`).
    pub add_to_default_group: bool,
    pub default_groups: Vec<String>,
    /// The groups `disable` removes; empty: those granted LICENSED_USER or more.
    pub access_groups: Vec<String>,
    /// Prefix of the groups that record the groups a disable removed.
    pub record_prefix: String,
}

/// `[targets.x] type = "bamboo"`: Bamboo Data Center's internal directory (admin REST API).
#[derive(Debug, Clone)]
pub struct BambooTargetConfig {
    pub url: String,
    pub auth: JiraAuth,
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
    pub concurrency: usize,
    pub default_groups: Vec<String>,
    /// The groups Bamboo's global Access permission is granted to: disabling removes them.
    pub access_groups: Vec<String>,
    /// idsync's group marking disabled users (`<record_group>:<access group>` records each
    /// access group removed).
    pub record_group: String,
}

/// `type = "crowd"`: a directory idsync serves under `/crowd/<target>/rest/usermanagement/1/`.
#[derive(Debug, Clone)]
pub struct CrowdTargetConfig {
    /// For people ("Jira and Confluence, production"): said when `idsync serve` starts.
    pub description: Option<String>,
    /// How long the served event feed keeps its events. A product whose event token is older
    /// is told the token expired and does a full synchronisation.
    pub event_retention: Duration,
    /// Serve nested groups (group-in-group memberships from the source, decision 0033); false
    /// serves flat groups (effective memberships), as every other target has them.
    pub nested_groups: bool,
}

/// How idsync signs in to Jira.
#[derive(Debug, Clone)]
pub enum JiraAuth {
    /// A personal access token (Bearer).
    Token(Secret),
    /// A user and password (Basic).
    Basic { user: String, password: Secret },
}

/// How the `disable` policy disables a Jira user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum JiraDeactivation {
    /// `"active": false` on Jira 8.3 and later, else `Groups`.
    #[default]
    Auto,
    Active,
    /// Remove the application-access groups and record them.
    Groups,
}

/// `[targets.x] type = "jira"`: Jira Data Center's internal directory.
#[derive(Debug, Clone)]
pub struct JiraTargetConfig {
    pub url: String,
    pub auth: JiraAuth,
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
    pub concurrency: usize,
    pub default_groups: Vec<String>,
    /// `default_groups_for = "all"`: every user the flow provisions is in the default groups
    /// (planned as the flow's own default groups), not only the users idsync creates.
    pub default_groups_all: bool,
    pub properties: bool,
    pub property_key: String,
    pub deactivation: JiraDeactivation,
    pub access_groups: Vec<String>,
    /// The user who takes over the projects and components a deleted user leads.
    pub lead_fallback: Option<String>,
}

/// How the `disable` policy disables a Confluence user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ConfluenceDeactivation {
    /// The admin user API's `disable` on Confluence 8.4 and later, else `Groups`.
    #[default]
    Auto,
    Disable,
    /// Remove the access groups and record them.
    Groups,
}

/// `[targets.x] type = "confluence"`: Confluence Data Center's internal directory (the auth is
/// the Data Center products' own: a personal access token, or user and password).
#[derive(Debug, Clone)]
pub struct ConfluenceTargetConfig {
    pub url: String,
    pub auth: JiraAuth,
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
    pub concurrency: usize,
    pub default_groups: Vec<String>,
    pub deactivation: ConfluenceDeactivation,
    /// The groups that grant "Can use" (`confluence-users` by default).
    pub access_groups: Vec<String>,
    /// The prefix of the groups that record removed access groups.
    pub record_prefix: String,
}

impl TargetKind {
    /// Whether idsync serves this target itself (nothing remote to write to or read back).
    pub fn is_served(&self) -> bool {
        matches!(self, TargetKind::Crowd(_))
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ScimProfile {
    #[default]
    Generic,
    AtlassianCloud,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserMatch {
    UserName,
    Email,
}

/// Any SCIM 2.0 service (Atlassian Cloud with `profile = "atlassian-cloud"`).
#[derive(Debug, Clone)]
pub struct ScimTargetConfig {
    pub url: String,
    pub token: Secret,
    pub profile: ScimProfile,
    pub user_match: Vec<UserMatch>,
    pub member_batch: usize,
    pub verified_domains: Vec<String>,
    pub timeout: Duration,
    /// User attributes never sent to this service (`title`, `name.formatted`,
    /// `emails.primary`), and therefore not compared by a reconcile.
    pub omit: Vec<String>,
    /// The service requires `name.formatted`: made from the given and family names where the
    /// source has none.
    pub required_name_formatted: bool,
    /// A new group's first members go in its POST (true, the default; checked against the
    /// answer), or follow it in a PATCH (false: a service that refuses them in the create).
    pub members_in_create: bool,
}

/// User attributes that `omit` may name (never `userName`, `active`, `id`).
pub use idsync_core::OMITTABLE_USER_ATTRIBUTES;

#[derive(Debug, Clone)]
pub struct TestTargetConfig {
    pub journal: PathBuf,
    pub fail_rate: f64,
    pub reject_user_names: Vec<String>,
    /// Operations per second the simulated application accepts before answering 429.
    pub accept_rate: u32,
    /// Attributes the simulated application does not keep (`title`, `department`,
    /// `emails.type`, `externalId`).
    pub drop_attributes: Vec<String>,
    /// Attributes it computes itself (`name.formatted`).
    pub compute_attributes: Vec<String>,
    /// It takes no PATCH: changes are learned to go out as PUT.
    pub no_patch: bool,
    /// Operation kinds that always fail, with the HTTP status and detail they fail with
    /// (`fail_every = { create_user = "500 not supported" }`).
    pub fail_every: Vec<(String, u16, String)>,
    /// User attributes it refuses with a 400 naming them (`emails.primary`, `title`), learned
    /// away as the SCIM target learns them.
    pub refuse_attributes: Vec<String>,
    /// It takes a group's first members in the create.
    pub members_in_create: bool,
    /// It refuses a group create without members (a 400 naming members).
    pub requires_members_on_create: bool,
}

#[derive(Debug, Clone)]
pub struct FlowConfig {
    pub name: String,
    pub source: String,
    /// The directory the source fills, which the flow reads.
    pub directory: String,
    pub target: String,
    pub deprovision: DeprovisionAction,
    pub group_deletion: GroupDeletion,
    pub group_rename: idsync_core::GroupRename,
    pub member_batch: usize,
    pub concurrency: usize,
    pub max_retries: u32,
    pub full_reconcile_interval: Option<Duration>,
    pub enabled: bool,
    /// Above it a run holds its deprovisions for `idsync approve` / `idsync reject`.
    pub deletion_threshold: idsync_core::DeletionThreshold,
    /// `[flows.x.mapping]`: target attributes computed by expressions.
    pub mapping: idsync_core::mapping::Mapping,
    /// `[[flows.x.scope]]`: which users the flow provisions.
    pub scope: idsync_core::scope::Scope,
    /// What happens to a deprovisioned user's group memberships.
    pub memberships: idsync_core::scope::MembershipPolicy,
    /// `[flows.x.groups]`: which groups, under which names.
    pub groups: idsync_core::groups::GroupRules,
    /// `inactive_after` and `inactive_exempt`: deprovision users without a login for so long.
    pub inactivity: Option<idsync_core::inactivity::Inactivity>,
}

impl FlowConfig {
    pub fn plan_options(&self) -> PlanOptions {
        PlanOptions {
            deprovision: self.deprovision,
            group_deletion: self.group_deletion,
            group_rename: self.group_rename,
            member_batch: self.member_batch,
            reconcile: false,
            can_rename_groups: true,
            now_ms: 0,
            // The target's to say (`Target::members_in_create`), when a run plans.
            members_in_create: false,
        }
    }
}

/// Load and check a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, path),
        Err(e) => Err(ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            key: String::new(),
            message: format!("cannot read the configuration: {e}"),
        }])),
    }
}

/// Check a configuration given as text; `file` names it in errors and anchors relative paths.
pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigErrors> {
    check::Checker::new(text, file).run()
}

/// Parse a duration such as `30s`, `15m`, `1h30m`, `1d` (at least one second).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => {
                return Err(format!(
                    "{s:?} is not a duration (use s, m, h, d as in \"1h30m\")"
                ))
            }
        };
        let n: u64 = num
            .parse()
            .map_err(|_| format!("{s:?} is not a duration (a number must come before {c:?})"))?;
        total = total.saturating_add(n.saturating_mul(unit));
        num.clear();
    }
    if !num.is_empty() {
        return Err(format!(
            "{s:?} is not a duration (the number {num} has no unit: s, m, h or d)"
        ));
    }
    if total == 0 {
        return Err(format!("{s:?}: a duration must be at least 1s"));
    }
    Ok(Duration::from_secs(total))
}
