//! The proxy's TOML configuration (documented in the README).
//!
//! Relative paths are resolved against the configuration file's folder.

use serde::Deserialize;
use sluice_fleet::source::SourceRef;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole configuration file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Where the policy comes from.
    pub policy: PolicyConfig,
    /// The admin listener.
    #[serde(default)]
    pub admin: AdminConfig,
    /// Where the proxy's SVID and trust bundles come from.
    #[serde(default)]
    pub identity: Option<IdentityConfig>,
    /// Inbound listeners.
    #[serde(default)]
    pub inbound: Vec<InboundConfig>,
    /// Outbound listeners.
    #[serde(default)]
    pub outbound: Vec<OutboundConfig>,
    /// Name resolution for service endpoints and egress.
    #[serde(default)]
    pub resolver: ResolverConfig,
    /// Limits and timeouts.
    #[serde(default)]
    pub limits: Limits,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// Envoy's external authorization service (`sluice authz`).
    #[serde(default)]
    pub authz: Option<AuthzConfig>,
}

/// The `ext_authz` gRPC service Envoy asks for decisions
/// (`docs/ext-authz.md`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AuthzConfig {
    /// Where the gRPC service listens (plaintext HTTP/2).
    pub listen: SocketAddr,
    /// The policy's server port for every check; when not written, the
    /// port of the check's `attributes.destination.address`.
    pub port: Option<u16>,
    /// Headers an allowed request gets upstream. A client-sent
    /// `x-sluice-peer-identity` (in any spelling passing for it) is removed
    /// whatever this says.
    #[serde(default)]
    pub add_headers: Vec<AuthzHeader>,
    /// Largest `CheckRequest` accepted, in bytes; larger ones are refused.
    #[serde(default = "default_max_check_bytes")]
    pub max_request_bytes: usize,
}

/// A header `sluice authz` may add to allowed requests.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum AuthzHeader {
    /// `x-sluice-peer-identity`: the peer's identity.
    PeerIdentity,
    /// `x-sluice-route`: `server.route`.
    Route,
    /// `x-sluice-rule`: the deciding rule (on an `audit` server, the rule
    /// that would have denied).
    Rule,
}

/// The default `authz.max-request-bytes`: 256 KiB, room for Envoy's
/// largest default header list (60 KiB) several times over.
pub const DEFAULT_MAX_CHECK_BYTES: usize = 256 * 1024;

fn default_max_check_bytes() -> usize {
    DEFAULT_MAX_CHECK_BYTES
}

/// Where the policy comes from: a compiled bundle, a policy source, or a
/// remote artifact (`source = "oci://..."`, `"https://..."`, `"http://..."`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PolicyConfig {
    /// A compiled bundle file (`sluice compile`).
    pub bundle: Option<PathBuf>,
    /// A policy source file or folder, compiled by the `sluice` binary.
    /// `None` when the source is remote (then [`PolicyConfig::remote`]).
    pub source: Option<PathBuf>,
    /// Reload when the file changes (checked every `watch-interval-ms`).
    #[serde(default = "yes")]
    pub watch: bool,
    /// How often the policy file is checked for changes.
    #[serde(default = "default_watch_ms")]
    pub watch_interval_ms: u64,
    /// Remote source only: PEM public keys whose signature is accepted.
    pub keys: Option<Vec<PathBuf>>,
    /// Remote source only: accept unsigned artifacts.
    pub allow_unsigned: Option<bool>,
    /// Remote source only: time between polls.
    pub poll_interval_ms: Option<u64>,
    /// Remote source only: the fraction (0 to 1) a wait may be shortened by.
    pub poll_jitter: Option<f64>,
    /// Remote source only: where the last verified bundle is kept.
    pub cache_dir: Option<PathBuf>,
    /// Remote source only: largest artifact accepted, in bytes.
    pub max_bundle_bytes: Option<u64>,
    /// Remote source only: speak plain HTTP to the registry or server.
    pub plain_http: Option<bool>,
    /// Remote source only: compile the signed source of an artifact whose
    /// bundle format this Sluice does not read.
    pub compile_source_on_mismatch: Option<bool>,
    /// The remote source and its settings, when `source` is a reference.
    #[serde(skip)]
    pub remote: Option<RemotePolicyConfig>,
    /// A candidate bundle, decided beside the policy and never enforced:
    /// a bundle file, a policy source file or folder, or a remote
    /// reference, as written (see [`PolicyConfig::candidate_source`]).
    pub candidate: Option<String>,
    /// Where the candidate comes from, parsed from `candidate`.
    #[serde(skip)]
    pub candidate_source: Option<CandidateSource>,
}

/// Where a candidate bundle comes from.
#[derive(Clone, Debug)]
pub enum CandidateSource {
    /// A compiled bundle file, or a policy source file or folder (compiled
    /// by the `sluice` binary), resolved against the configuration's folder.
    Path(PathBuf),
    /// A registry or HTTP layout, fetched and verified with the policy's
    /// remote settings (`keys` or `allow-unsigned`, `plain-http`,
    /// `poll-interval-ms`, …); never cached.
    Remote(RemotePolicyConfig),
}

impl CandidateSource {
    /// The source as `/policy` shows it: a path or a reference.
    pub fn display(&self) -> String {
        match self {
            CandidateSource::Path(p) => p.display().to_string(),
            CandidateSource::Remote(r) => r.source_text.clone(),
        }
    }
}

/// A policy pulled from a registry or an HTTP image layout.
#[derive(Clone, Debug)]
pub struct RemotePolicyConfig {
    /// The reference as written (the cache is keyed by it).
    pub source_text: String,
    /// The parsed reference.
    pub source: SourceRef,
    /// PEM public keys whose signature is accepted; empty with
    /// `allow_unsigned`.
    pub keys: Vec<PathBuf>,
    /// Accept unsigned artifacts (exclusive with `keys`).
    pub allow_unsigned: bool,
    /// Time between polls (at most; see `poll_jitter`).
    pub poll_interval: Duration,
    /// Each wait is `poll_interval * (1 - poll_jitter * U[0,1))`.
    pub poll_jitter: f64,
    /// Where the last verified bundle is kept, trusted like this file.
    pub cache_dir: Option<PathBuf>,
    /// Largest artifact accepted, in bytes.
    pub max_bundle_bytes: u64,
    /// Plain HTTP to a registry, or for an `http://` layout.
    pub plain_http: bool,
    /// Compile the source of an artifact of another bundle format.
    pub compile_source_on_mismatch: bool,
}

/// The default `poll-interval-ms`.
pub const DEFAULT_POLL_INTERVAL_MS: u64 = 30_000;
/// The smallest `poll-interval-ms` accepted.
pub const MIN_POLL_INTERVAL_MS: u64 = 100;
/// The default `poll-jitter`.
pub const DEFAULT_POLL_JITTER: f64 = 0.1;

/// The admin listener.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AdminConfig {
    /// Its address; `127.0.0.1:9990` when not written.
    #[serde(default = "default_admin")]
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: default_admin(),
        }
    }
}

/// The proxy's identity: files, or the SPIFFE Workload API.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct IdentityConfig {
    /// PEM certificate chain of the proxy's SVID, leaf first.
    pub cert: Option<PathBuf>,
    /// PEM private key of the SVID.
    pub key: Option<PathBuf>,
    /// Trust domain name to a PEM file of its CA certificates.
    #[serde(default)]
    pub trust_bundles: BTreeMap<String, PathBuf>,
    /// The Workload API socket (`unix:///path` or a path), instead of files.
    pub workload_api: Option<String>,
    /// How often identity files are checked for changes.
    #[serde(default = "default_watch_ms")]
    pub watch_interval_ms: u64,
}

/// How an inbound listener speaks to clients.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// TLS 1.3 only; a client certificate is verified when presented.
    Mtls,
    /// No TLS.
    Plaintext,
    /// Both on one port, told apart by the first byte (`0x16` is TLS).
    Permissive,
}

/// What a listener carries, when not taken from the policy.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// From the policy: a `tcp` server's port relays bytes, anything else is HTTP.
    Auto,
    /// HTTP/1.1 and HTTP/2.
    Http,
    /// Opaque TCP, decided per connection.
    Tcp,
}

/// The protocol an inbound listener speaks to its application.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum AppProtocol {
    /// The client's own: HTTP/1.1 for HTTP/1.1 clients, h2c for HTTP/2 clients.
    #[default]
    Auto,
    /// HTTP/1.1 for every client. gRPC needs HTTP/2: a gRPC request is
    /// answered with gRPC status 13 instead of being forwarded.
    Http1,
    /// HTTP/2 with prior knowledge (h2c) for every client. HTTP/1.1
    /// `Upgrade` requests cannot be carried and are answered 501.
    H2c,
}

/// An inbound listener.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct InboundConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The policy's server port this listener stands for.
    pub port: u16,
    /// The local application's address.
    pub app: SocketAddr,
    /// TLS mode; `mtls` when not written.
    #[serde(default = "default_tls")]
    pub tls: TlsMode,
    /// Protocol; `auto` when not written.
    #[serde(default = "default_protocol")]
    pub protocol: Protocol,
    /// What HTTP is forwarded to the application as; `auto` when not written.
    #[serde(default)]
    pub app_protocol: AppProtocol,
}

/// How an outbound listener receives the application's traffic.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum OutboundMode {
    /// An HTTP proxy (`HTTP_PROXY`: origin- or absolute-form requests with a
    /// `Host`) and `CONNECT` tunnels (`HTTPS_PROXY`); HTTP/1.1 and h2c.
    Explicit,
    /// Connections redirected by iptables (`sluice init`): the destination
    /// comes from `SO_ORIGINAL_DST`, and HTTP is detected on it.
    Transparent,
}

/// An outbound listener.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct OutboundConfig {
    /// Where to listen (loopback, normally).
    pub listen: SocketAddr,
    /// `explicit` when not written.
    #[serde(default = "default_outbound_mode")]
    pub mode: OutboundMode,
}

/// Name resolution.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ResolverConfig {
    /// How often endpoint names of services are resolved again.
    pub refresh_ms: u64,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        ResolverConfig { refresh_ms: 5_000 }
    }
}

fn default_outbound_mode() -> OutboundMode {
    OutboundMode::Explicit
}

/// Limits and timeouts.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Limits {
    /// Time allowed for the TLS handshake and each request's headers.
    pub header_read_timeout_ms: u64,
    /// Largest request head accepted (HTTP/1.1 buffer, HTTP/2 header list).
    pub max_header_bytes: usize,
    /// Connections accepted at once over all listeners; more are closed.
    pub max_connections: usize,
    /// A connection with no bytes either way for this long is closed.
    pub idle_timeout_ms: u64,
    /// How long shutdown waits for requests in flight.
    pub drain_timeout_ms: u64,
    /// Time allowed to connect to an upstream (outbound).
    pub connect_timeout_ms: u64,
    /// Time allowed to connect to the application for an inbound TCP relay.
    pub tcp_connect_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout_ms: 10_000,
            max_header_bytes: 64 * 1024,
            max_connections: 10_000,
            idle_timeout_ms: 300_000,
            drain_timeout_ms: 30_000,
            connect_timeout_ms: 5_000,
            tcp_connect_timeout_ms: 10_000,
        }
    }
}

impl Limits {
    /// The header read timeout.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }
    /// The idle timeout.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }
    /// The upstream connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    /// The inbound TCP relay's connect timeout to the application.
    pub fn tcp_connect_timeout(&self) -> Duration {
        Duration::from_millis(self.tcp_connect_timeout_ms)
    }
    /// The drain timeout.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }
}

/// Logging.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LogConfig {
    /// Write every decision as a JSON line to this file (appended).
    pub decision_log: Option<PathBuf>,
}

/// A configuration that cannot be used.
#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The TOML is malformed or has unknown fields.
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message.
        message: String,
    },
    /// The TOML parses but makes no sense.
    Invalid {
        /// What is wrong.
        message: String,
    },
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::Read { path, error } => {
                write!(f, "cannot read `{}`: {error}", path.display())
            }
            ConfigError::Parse { path, message } => {
                write!(f, "`{}`: {}", path.display(), message.trim_end())
            }
            ConfigError::Invalid { message } => f.write_str(message),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and checks a configuration file, resolving relative paths.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, base).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses a configuration, resolving relative paths against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::new(),
            message: e.to_string(),
        })?;
        config.policy.remote = config.policy.remote_source(base)?;
        config.policy.candidate_source = config.policy.candidate_source(base)?;
        config.resolve(base);
        config.check()?;
        Ok(config)
    }

    fn resolve(&mut self, base: &Path) {
        let join = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        self.policy.bundle.as_mut().map(join);
        self.policy.source.as_mut().map(join);
        if let Some(id) = &mut self.identity {
            id.cert.as_mut().map(join);
            id.key.as_mut().map(join);
            id.trust_bundles.values_mut().for_each(join);
        }
        self.log.decision_log.as_mut().map(join);
    }

    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError::Invalid { message });
        let source = self.policy.source.is_some() || self.policy.remote.is_some();
        match (&self.policy.bundle, source) {
            (Some(_), true) => {
                return invalid("`policy` takes `bundle` or `source`, not both".into())
            }
            (None, false) => return invalid("`policy` needs `bundle` or `source`".into()),
            _ => {}
        }
        let needs_tls = self.inbound.iter().any(|l| l.tls != TlsMode::Plaintext);
        match &self.identity {
            None if needs_tls => {
                return invalid("a listener uses TLS but there is no `[identity]` section".into())
            }
            Some(id) => {
                let files = id.cert.is_some() || id.key.is_some() || !id.trust_bundles.is_empty();
                match (&id.workload_api, files) {
                    (Some(_), true) => {
                        return invalid(
                            "`identity` takes `workload-api` or files (`cert`, `key`, `trust-bundles`), not both"
                                .into(),
                        )
                    }
                    (None, _) if id.cert.is_none() || id.key.is_none() => {
                        return invalid("`identity` needs `cert` and `key`, or `workload-api`".into())
                    }
                    (None, _) if id.trust_bundles.is_empty() => {
                        return invalid("`identity` needs at least one of `trust-bundles`".into())
                    }
                    _ => {}
                }
            }
            None => {}
        }
        let mut seen = std::collections::HashSet::new();
        for l in &self.inbound {
            if !seen.insert(l.listen) {
                return invalid(format!("two listeners on `{}`", l.listen));
            }
            if l.port == 0 {
                return invalid(format!(
                    "listener `{}`: `port` must be 1 to 65535",
                    l.listen
                ));
            }
        }
        for l in &self.outbound {
            if !seen.insert(l.listen) {
                return invalid(format!("two listeners on `{}`", l.listen));
            }
        }
        if let Some(authz) = &self.authz {
            if !seen.insert(authz.listen) {
                return invalid(format!("two listeners on `{}`", authz.listen));
            }
            if authz.port == Some(0) {
                return invalid("`authz.port` must be 1 to 65535".into());
            }
            if authz.max_request_bytes < 1024 {
                return invalid("`authz.max-request-bytes` must be at least 1024".into());
            }
        }
        if self.limits.connect_timeout_ms == 0 || self.resolver.refresh_ms == 0 {
            return invalid(
                "`limits.connect-timeout-ms` and `resolver.refresh-ms` must be at least 1".into(),
            );
        }
        if self.limits.tcp_connect_timeout_ms == 0 {
            return invalid("`limits.tcp-connect-timeout-ms` must be at least 1".into());
        }
        if self.limits.max_connections == 0 {
            return invalid("`limits.max-connections` must be at least 1".into());
        }
        if self.limits.max_header_bytes < 1024 {
            return invalid("`limits.max-header-bytes` must be at least 1024".into());
        }
        Ok(())
    }

    /// The policy file to read (bundle or source); empty for a remote
    /// source.
    pub fn policy_path(&self) -> &Path {
        self.policy
            .bundle
            .as_deref()
            .or(self.policy.source.as_deref())
            .unwrap_or(Path::new(""))
    }
}

impl PolicyConfig {
    /// Parses `candidate`: a remote reference (with the remote settings
    /// of `source`), or a path resolved against `base`.
    fn candidate_source(&self, base: &Path) -> Result<Option<CandidateSource>, ConfigError> {
        let Some(text) = &self.candidate else {
            return Ok(None);
        };
        if text.trim().is_empty() {
            return Err(ConfigError::Invalid {
                message: "`policy.candidate` is empty: write a bundle or policy path, or an `oci://`, `https://` or `http://` reference".into(),
            });
        }
        if is_remote(text) {
            let mut remote = self.remote_settings(text, "candidate", base)?;
            remote.cache_dir = None;
            return Ok(Some(CandidateSource::Remote(remote)));
        }
        let path = PathBuf::from(text);
        Ok(Some(CandidateSource::Path(if path.is_relative() {
            base.join(path)
        } else {
            path
        })))
    }

    /// Takes a remote reference out of `source` and checks the keys that
    /// go with one; paths are resolved against `base`.
    fn remote_source(&mut self, base: &Path) -> Result<Option<RemotePolicyConfig>, ConfigError> {
        let invalid = |message: String| Err(ConfigError::Invalid { message });
        let text = match self.source.as_deref().and_then(Path::to_str) {
            Some(t) if is_remote(t) => t.to_owned(),
            _ if self.candidate.as_deref().is_some_and(is_remote) => return Ok(None),
            _ => {
                let written = [
                    ("keys", self.keys.is_some()),
                    ("allow-unsigned", self.allow_unsigned.is_some()),
                    ("poll-interval-ms", self.poll_interval_ms.is_some()),
                    ("poll-jitter", self.poll_jitter.is_some()),
                    ("cache-dir", self.cache_dir.is_some()),
                    ("max-bundle-bytes", self.max_bundle_bytes.is_some()),
                    ("plain-http", self.plain_http.is_some()),
                    (
                        "compile-source-on-mismatch",
                        self.compile_source_on_mismatch.is_some(),
                    ),
                ];
                if let Some((key, _)) = written.iter().find(|(_, w)| *w) {
                    return invalid(format!(
                        "`policy.{key}` is only for a remote `source` or `candidate` (`oci://`, `https://` or `http://`)"
                    ));
                }
                return Ok(None);
            }
        };
        let remote = self.remote_settings(&text, "source", base)?;
        self.source = None;
        Ok(Some(remote))
    }

    /// The remote settings for the reference `text` written in `field`.
    fn remote_settings(
        &self,
        text: &str,
        field: &str,
        base: &Path,
    ) -> Result<RemotePolicyConfig, ConfigError> {
        let invalid = |message: String| Err(ConfigError::Invalid { message });
        let text = text.to_owned();
        let source = match SourceRef::parse(&text) {
            Ok(s) => s,
            Err(e) => return invalid(format!("`policy.{field}`: {e}")),
        };
        let keys = self.keys.clone().unwrap_or_default();
        let allow_unsigned = self.allow_unsigned.unwrap_or(false);
        match (keys.is_empty(), allow_unsigned) {
            (true, false) => return invalid(
                "a remote policy source needs `keys` to verify its signature, or `allow-unsigned = true`".into(),
            ),
            (false, true) => {
                return invalid("`policy` takes `keys` or `allow-unsigned = true`, not both".into())
            }
            _ => {}
        }
        let plain_http = self.plain_http.unwrap_or(false);
        if source.is_plain_http_url() && !plain_http {
            return invalid(format!(
                "`{text}` is plain HTTP: write `plain-http = true` to fetch the policy unencrypted"
            ));
        }
        let interval = self.poll_interval_ms.unwrap_or(DEFAULT_POLL_INTERVAL_MS);
        if interval < MIN_POLL_INTERVAL_MS {
            return invalid(format!(
                "`policy.poll-interval-ms` must be at least {MIN_POLL_INTERVAL_MS}"
            ));
        }
        let jitter = self.poll_jitter.unwrap_or(DEFAULT_POLL_JITTER);
        if !(0.0..=1.0).contains(&jitter) {
            return invalid("`policy.poll-jitter` must be from 0.0 to 1.0".into());
        }
        let max_bundle_bytes = self
            .max_bundle_bytes
            .unwrap_or(sluice_fleet::artifact::DEFAULT_MAX_BYTES);
        if max_bundle_bytes == 0 {
            return invalid("`policy.max-bundle-bytes` must be at least 1".into());
        }
        let join = |p: &PathBuf| {
            if p.is_relative() {
                base.join(p)
            } else {
                p.clone()
            }
        };
        Ok(RemotePolicyConfig {
            source_text: text,
            source,
            keys: keys.iter().map(join).collect(),
            allow_unsigned,
            poll_interval: Duration::from_millis(interval),
            poll_jitter: jitter,
            cache_dir: self.cache_dir.as_ref().map(join),
            max_bundle_bytes,
            plain_http,
            compile_source_on_mismatch: self.compile_source_on_mismatch.unwrap_or(false),
        })
    }
}

/// Whether a `source` or `candidate` is a remote reference.
fn is_remote(text: &str) -> bool {
    ["oci://", "https://", "http://"]
        .iter()
        .any(|p| text.starts_with(p))
}

fn yes() -> bool {
    true
}
fn default_watch_ms() -> u64 {
    1000
}
fn default_admin() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9990))
}
fn default_tls() -> TlsMode {
    TlsMode::Mtls
}
fn default_protocol() -> Protocol {
    Protocol::Auto
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[policy]
bundle = "p.bundle"
[[inbound]]
listen = "127.0.0.1:8443"
port = 8080
app = "127.0.0.1:8080"
tls = "plaintext"
"#;

    #[test]
    fn an_authz_table_parses_with_defaults_and_is_checked() {
        let text = "[policy]\nsource = \"p.sluice\"\n[authz]\nlisten = \"127.0.0.1:9191\"\n";
        let c = Config::parse(text, Path::new("/etc/sluice")).unwrap();
        let authz = c.authz.unwrap();
        assert_eq!(authz.port, None);
        assert!(authz.add_headers.is_empty());
        assert_eq!(authz.max_request_bytes, DEFAULT_MAX_CHECK_BYTES);
        let text =
            format!("{text}port = 8080\nadd-headers = [\"peer-identity\", \"route\", \"rule\"]\n");
        let c = Config::parse(&text, Path::new("/")).unwrap();
        let authz = c.authz.unwrap();
        assert_eq!(authz.port, Some(8080));
        assert_eq!(
            authz.add_headers,
            [
                AuthzHeader::PeerIdentity,
                AuthzHeader::Route,
                AuthzHeader::Rule
            ]
        );
        let bad = Config::parse(
            "[policy]\nsource = \"p\"\n[authz]\nlisten = \"127.0.0.1:1\"\nadd-headers = [\"cookie\"]\n",
            Path::new("/"),
        );
        assert!(matches!(bad, Err(ConfigError::Parse { .. })));
        let bad = Config::parse(
            "[policy]\nsource = \"p\"\n[authz]\nlisten = \"127.0.0.1:1\"\nport = 0\n",
            Path::new("/"),
        )
        .unwrap_err();
        assert_eq!(bad.to_string(), "`authz.port` must be 1 to 65535");
    }

    #[test]
    fn readme_example_parses() {
        let readme = include_str!("../../README.md");
        let start = readme
            .find("```toml\n")
            .expect("a toml block in the README")
            + 8;
        let len = readme[start..].find("```").unwrap();
        let c = Config::parse(&readme[start..start + len], Path::new("/etc/sluice")).unwrap();
        assert_eq!(c.inbound.len(), 1);
        assert_eq!(c.identity.unwrap().trust_bundles.len(), 2);
        assert!(c.log.decision_log.is_some());
    }

    #[test]
    fn readme_remote_example_parses() {
        let readme = include_str!("../../README.md");
        let start = readme
            .find("```toml\n[policy]\nsource = \"oci://")
            .expect("the remote source example in the README")
            + 8;
        let len = readme[start..].find("```").unwrap();
        let c = Config::parse(&readme[start..start + len], Path::new("/etc/sluice")).unwrap();
        let r = c.policy.remote.unwrap();
        assert_eq!(r.keys, [PathBuf::from("/etc/sluice/signer.pub")]);
        assert_eq!(
            r.poll_interval,
            Duration::from_millis(DEFAULT_POLL_INTERVAL_MS)
        );
        assert_eq!(
            r.max_bundle_bytes,
            sluice_fleet::artifact::DEFAULT_MAX_BYTES
        );
    }

    #[test]
    fn minimal_config_resolves_paths() {
        let c = Config::parse(MINIMAL, Path::new("/etc/sluice")).unwrap();
        assert_eq!(c.policy_path(), Path::new("/etc/sluice/p.bundle"));
        assert_eq!(c.inbound[0].port, 8080);
        assert_eq!(c.inbound[0].app_protocol, AppProtocol::Auto);
        for (value, expected) in [
            ("auto", AppProtocol::Auto),
            ("http1", AppProtocol::Http1),
            ("h2c", AppProtocol::H2c),
        ] {
            let text = format!("{MINIMAL}app-protocol = \"{value}\"\n");
            let c = Config::parse(&text, Path::new(".")).unwrap();
            assert_eq!(c.inbound[0].app_protocol, expected);
        }
        assert_eq!(c.admin.listen.port(), 9990);
        assert_eq!(c.limits.max_connections, 10_000);
        assert_eq!(c.limits.tcp_connect_timeout(), Duration::from_secs(10));
        let text = format!("{MINIMAL}[limits]\ntcp-connect-timeout-ms = 250\n");
        let c = Config::parse(&text, Path::new(".")).unwrap();
        assert_eq!(c.limits.tcp_connect_timeout(), Duration::from_millis(250));
    }

    #[test]
    fn bad_configs_are_explained() {
        let cases = [
            ("[policy]\n", "needs `bundle` or `source`"),
            (
                "[policy]\nbundle=\"a\"\nsource=\"b\"\n",
                "not both",
            ),
            (
                "[policy]\nbundle=\"a\"\n[[inbound]]\nlisten=\"127.0.0.1:1\"\nport=1\napp=\"127.0.0.1:2\"\n",
                "no `[identity]`",
            ),
            ("[policy]\nbundle=\"a\"\nfoo=1\n", "unknown field `foo`"),
            (
                "[policy]\nbundle=\"a\"\n[identity]\ncert=\"c\"\nkey=\"k\"\n",
                "trust-bundles",
            ),
        ];
        let bad_app_protocol = format!("{MINIMAL}app-protocol = \"http2\"\n");
        let cases = cases.into_iter().chain([(
            bad_app_protocol.as_str(),
            "unknown variant `http2`, expected one of `auto`, `http1`, `h2c`",
        )]);
        for (text, expected) in cases {
            let e = Config::parse(text, Path::new(".")).unwrap_err().to_string();
            assert!(e.contains(expected), "{text}: {e}");
        }
    }

    #[test]
    fn a_remote_source_is_parsed_with_its_settings() {
        let text = "[policy]\nsource = \"oci://127.0.0.1:5000/team/policy:v1\"\nkeys = [\"signer.pub\", \"/k/other.pub\"]\ncache-dir = \"cache\"\nplain-http = true\npoll-interval-ms = 200\n";
        let c = Config::parse(text, Path::new("/etc/sluice")).unwrap();
        assert!(c.policy.source.is_none() && c.policy.bundle.is_none());
        let r = c.policy.remote.unwrap();
        assert_eq!(r.source_text, "oci://127.0.0.1:5000/team/policy:v1");
        assert!(matches!(r.source, SourceRef::Registry(_)));
        assert_eq!(
            r.keys,
            [
                PathBuf::from("/etc/sluice/signer.pub"),
                PathBuf::from("/k/other.pub")
            ]
        );
        assert_eq!(r.cache_dir, Some(PathBuf::from("/etc/sluice/cache")));
        assert!(r.plain_http && !r.allow_unsigned && !r.compile_source_on_mismatch);
        assert_eq!(r.poll_interval, Duration::from_millis(200));
        assert_eq!(r.poll_jitter, DEFAULT_POLL_JITTER);
        assert_eq!(
            r.max_bundle_bytes,
            sluice_fleet::artifact::DEFAULT_MAX_BYTES
        );

        let text = "[policy]\nsource = \"https://cdn.example/layouts/policy@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"\nallow-unsigned = true\ncompile-source-on-mismatch = true\nmax-bundle-bytes = 1000\npoll-jitter = 0.5\n";
        let r = Config::parse(text, Path::new("."))
            .unwrap()
            .policy
            .remote
            .unwrap();
        assert!(matches!(r.source, SourceRef::Http(_)));
        assert!(r.allow_unsigned && r.compile_source_on_mismatch && r.keys.is_empty());
        assert_eq!(
            (r.poll_interval, r.poll_jitter, r.max_bundle_bytes),
            (Duration::from_millis(DEFAULT_POLL_INTERVAL_MS), 0.5, 1000)
        );

        // A path stays a path.
        let c = Config::parse("[policy]\nsource = \"policies/web\"\n", Path::new("/etc")).unwrap();
        assert!(c.policy.remote.is_none());
        assert_eq!(c.policy_path(), Path::new("/etc/policies/web"));
    }

    #[test]
    fn a_candidate_is_a_path_or_a_remote_reference() {
        let c = Config::parse(MINIMAL, Path::new("/etc/sluice")).unwrap();
        assert!(c.policy.candidate_source.is_none());
        let text = MINIMAL.replace(
            "bundle = \"p.bundle\"\n",
            "bundle = \"p.bundle\"\ncandidate = \"next/policy\"\n",
        );
        let c = Config::parse(&text, Path::new("/etc/sluice")).unwrap();
        let Some(CandidateSource::Path(p)) = &c.policy.candidate_source else {
            panic!("{:?}", c.policy.candidate_source)
        };
        assert_eq!(p, Path::new("/etc/sluice/next/policy"));
        assert_eq!(
            c.policy.candidate_source.unwrap().display(),
            "/etc/sluice/next/policy"
        );

        // A remote candidate beside a local policy takes the remote
        // settings, and is never cached.
        let text = "[policy]\nsource = \"policy.sluice\"\ncandidate = \"oci://127.0.0.1:5000/team/policy:v2\"\nkeys = [\"signer.pub\"]\nplain-http = true\ncache-dir = \"cache\"\npoll-interval-ms = 500\n";
        let c = Config::parse(text, Path::new("/etc/sluice")).unwrap();
        assert!(c.policy.remote.is_none());
        assert_eq!(c.policy_path(), Path::new("/etc/sluice/policy.sluice"));
        let Some(CandidateSource::Remote(r)) = c.policy.candidate_source else {
            panic!("not remote")
        };
        assert_eq!(r.source_text, "oci://127.0.0.1:5000/team/policy:v2");
        assert_eq!(r.keys, [PathBuf::from("/etc/sluice/signer.pub")]);
        assert!(r.plain_http && r.cache_dir.is_none());
        assert_eq!(r.poll_interval, Duration::from_millis(500));

        // Both remote: the same settings verify both.
        let text = "[policy]\nsource = \"oci://r.example/p:v1\"\ncandidate = \"https://cdn.example/layouts/p:v2\"\nallow-unsigned = true\ncache-dir = \"cache\"\n";
        let c = Config::parse(text, Path::new("/etc")).unwrap();
        let live = c.policy.remote.unwrap();
        assert_eq!(live.cache_dir, Some(PathBuf::from("/etc/cache")));
        let Some(CandidateSource::Remote(r)) = c.policy.candidate_source else {
            panic!("not remote")
        };
        assert!(r.allow_unsigned && r.cache_dir.is_none());
        assert!(matches!(r.source, SourceRef::Http(_)));
    }

    #[test]
    fn bad_candidates_are_explained() {
        let cases = [
            ("bundle = \"p.bundle\"\ncandidate = \"\"\n", "`policy.candidate` is empty"),
            ("bundle = \"p.bundle\"\ncandidate = \" \"\n", "`policy.candidate` is empty"),
            ("bundle = \"p.bundle\"\ncandidate = 3\n", "invalid type: integer `3`, expected a string"),
            (
                "bundle = \"p.bundle\"\ncandidate = \"oci://r.example/p:v2\"\n",
                "a remote policy source needs `keys` to verify its signature, or `allow-unsigned = true`",
            ),
            (
                "bundle = \"p.bundle\"\ncandidate = \"oci://bad ref\"\nallow-unsigned = true\n",
                "`policy.candidate`: ",
            ),
            (
                "bundle = \"p.bundle\"\ncandidate = \"http://127.0.0.1:8000/layout:v2\"\nallow-unsigned = true\n",
                "`http://127.0.0.1:8000/layout:v2` is plain HTTP: write `plain-http = true`",
            ),
            (
                "bundle = \"p.bundle\"\ncandidate = \"next.bundle\"\nkeys = [\"a.pub\"]\n",
                "`policy.keys` is only for a remote `source` or `candidate`",
            ),
            ("candidate = \"next.bundle\"\n", "`policy` needs `bundle` or `source`"),
        ];
        for (text, expected) in cases {
            let text = format!("[policy]\n{text}");
            let e = Config::parse(&text, Path::new("."))
                .unwrap_err()
                .to_string();
            assert!(e.contains(expected), "{text}: {e}");
        }
    }

    #[test]
    fn bad_remote_sources_are_explained() {
        let reg = "source = \"oci://127.0.0.1:5000/team/policy:v1\"\n";
        let cases = [
            (
                reg.to_owned(),
                "a remote policy source needs `keys` to verify its signature, or `allow-unsigned = true`",
            ),
            (format!("{reg}keys = []\n"), "needs `keys`"),
            (
                format!("{reg}keys = [\"a.pub\"]\nallow-unsigned = true\n"),
                "`keys` or `allow-unsigned = true`, not both",
            ),
            (
                "source = \"http://127.0.0.1:8000/layout:v1\"\nallow-unsigned = true\n".into(),
                "`http://127.0.0.1:8000/layout:v1` is plain HTTP: write `plain-http = true`",
            ),
            (
                "source = \"oci://bad ref\"\nallow-unsigned = true\n".into(),
                "`policy.source`: ",
            ),
            (
                format!("{reg}allow-unsigned = true\npoll-interval-ms = 99\n"),
                "`policy.poll-interval-ms` must be at least 100",
            ),
            (
                format!("{reg}allow-unsigned = true\npoll-jitter = 1.5\n"),
                "`policy.poll-jitter` must be from 0.0 to 1.0",
            ),
            (
                "bundle = \"p.bundle\"\nkeys = [\"a.pub\"]\n".into(),
                "`policy.keys` is only for a remote `source`",
            ),
            (
                "source = \"p.sluice\"\ncache-dir = \"c\"\n".into(),
                "`policy.cache-dir` is only for a remote `source`",
            ),
            (
                format!("{reg}allow-unsigned = true\nbundle = \"p.bundle\"\n"),
                "not both",
            ),
        ];
        for (text, expected) in cases {
            let text = format!("[policy]\n{text}");
            let e = Config::parse(&text, Path::new("."))
                .unwrap_err()
                .to_string();
            assert!(e.contains(expected), "{text}: {e}");
        }
        let ok = "[policy]\nsource = \"http://127.0.0.1:8000/layout:v1\"\nallow-unsigned = true\nplain-http = true\n";
        assert!(Config::parse(ok, Path::new(".")).is_ok());
    }
}
