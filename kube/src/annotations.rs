//! The annotation and label keys that steer injection, and their parsing.
//!
//! In Linkerd's style: `sluice.io/inject` asks for (or refuses) the proxy,
//! `config.sluice.io/*` tune it, and `sluice.io/injected` marks an injected
//! pod. `docs/kubernetes.md` has the table.

use std::collections::BTreeMap;
use std::fmt;

/// `enabled` or `disabled`, on a pod template; as a label on a namespace,
/// `enabled` opts every pod of the namespace in.
pub const INJECT: &str = "sluice.io/inject";
/// The marker of an injected pod; its value is the Sluice version.
pub const INJECTED: &str = "sluice.io/injected";
/// The generated proxy configuration (TOML), exposed to the proxy as a file
/// by a downward API volume.
pub const PROXY_CONFIG: &str = "sluice.io/proxy-config";
/// The proxy's container image.
pub const PROXY_IMAGE: &str = "config.sluice.io/proxy-image";
/// Comma-separated application ports the proxy stands in front of.
pub const INBOUND_PORTS: &str = "config.sluice.io/inbound-ports";
/// Comma-separated ports or ranges (`8000-8099`) whose incoming TCP is not redirected.
pub const SKIP_INBOUND_PORTS: &str = "config.sluice.io/skip-inbound-ports";
/// Comma-separated ports or ranges whose outgoing TCP is not redirected.
pub const SKIP_OUTBOUND_PORTS: &str = "config.sluice.io/skip-outbound-ports";
/// The name of a ConfigMap whose key `policy.sluice` is the policy source.
pub const POLICY_CONFIGMAP: &str = "config.sluice.io/policy-configmap";
/// An `oci://` or `https://` reference of a signed policy artifact.
pub const POLICY_SOURCE: &str = "config.sluice.io/policy-source";
/// The name of a ConfigMap whose key `signer.pub` verifies `policy-source`.
pub const POLICY_KEYS_CONFIGMAP: &str = "config.sluice.io/policy-keys-configmap";
/// `spiffe-csi` or `cert-manager`: where the proxy's SVID comes from.
pub const IDENTITY: &str = "config.sluice.io/identity";
/// `native` or `classic`: how the proxy container runs.
pub const SIDECAR: &str = "config.sluice.io/sidecar";
/// The trust domain of the cert-manager trust bundle.
pub const TRUST_DOMAIN: &str = "config.sluice.io/trust-domain";
/// `auto`, `http1` or `h2c`: what the proxy forwards HTTP to the
/// application as (the `app-protocol` of every generated `[[inbound]]`).
pub const APP_PROTOCOL: &str = "config.sluice.io/app-protocol";

/// The prefix of the keys that tune the proxy; a key with it that is not
/// in [`CONFIG_KEYS`] is refused.
pub const CONFIG_PREFIX: &str = "config.sluice.io/";
/// Every `config.sluice.io/*` key this version reads.
pub const CONFIG_KEYS: [&str; 11] = [
    PROXY_IMAGE,
    INBOUND_PORTS,
    SKIP_INBOUND_PORTS,
    SKIP_OUTBOUND_PORTS,
    POLICY_CONFIGMAP,
    POLICY_SOURCE,
    POLICY_KEYS_CONFIGMAP,
    IDENTITY,
    SIDECAR,
    TRUST_DOMAIN,
    APP_PROTOCOL,
];

/// The value of `sluice.io/inject`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InjectMode {
    /// `enabled`: add the proxy.
    Enabled,
    /// `disabled`: never add the proxy, even in an opted-in namespace.
    Disabled,
}

/// Where the proxy's SVID comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Identity {
    /// The SPIFFE CSI driver (`csi.spiffe.io`): the SPIRE agent's Workload API socket.
    #[default]
    SpiffeCsi,
    /// cert-manager's csi-driver-spiffe (`spiffe.csi.cert-manager.io`): SVID files.
    CertManager,
}

/// How the proxy container runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Sidecar {
    /// An init container with `restartPolicy: Always` (Kubernetes 1.29 and later).
    #[default]
    Native,
    /// The first of the pod's containers.
    Classic,
}

/// What the proxy forwards HTTP to the application as (the proxy's
/// `app-protocol`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AppProtocol {
    /// The client's own: HTTP/1.1 clients over HTTP/1.1, HTTP/2 clients
    /// over h2c. An HTTP/1.1-only application fails HTTP/2 clients (502).
    #[default]
    Auto,
    /// HTTP/1.1 for every client; gRPC requests are refused (they need HTTP/2).
    Http1,
    /// HTTP/2 with prior knowledge for every client; HTTP/1.1 upgrades are refused.
    H2c,
}

impl AppProtocol {
    /// The value as the annotation and the proxy's TOML write it.
    pub fn as_str(self) -> &'static str {
        match self {
            AppProtocol::Auto => "auto",
            AppProtocol::Http1 => "http1",
            AppProtocol::H2c => "h2c",
        }
    }
}

/// As the annotation and the proxy's TOML write it.
impl fmt::Display for AppProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A TCP port or an inclusive range, written `9090` or `8000-8099`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortRange {
    /// The first port.
    pub first: u16,
    /// The last port (equal to `first` for one port).
    pub last: u16,
}

impl PortRange {
    /// One port.
    pub fn one(port: u16) -> PortRange {
        PortRange {
            first: port,
            last: port,
        }
    }

    /// Whether `port` is in the range.
    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }
}

/// As `sluice init` reads it: `9090` or `8000-8099`.
impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// An annotation (or flag) value that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnotationError {
    /// The annotation key (or the flag's name).
    pub key: String,
    /// The value as written.
    pub value: String,
    /// What was expected.
    pub expected: &'static str,
}

impl fmt::Display for AnnotationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}: {}` is not valid: expected {}",
            self.key, self.value, self.expected
        )
    }
}

impl std::error::Error for AnnotationError {}

fn error(key: &str, value: &str, expected: &'static str) -> AnnotationError {
    AnnotationError {
        key: key.to_owned(),
        value: value.to_owned(),
        expected,
    }
}

/// Reads `sluice.io/inject` (surrounding spaces ignored).
pub fn parse_inject(key: &str, value: &str) -> Result<InjectMode, AnnotationError> {
    match value.trim() {
        "enabled" => Ok(InjectMode::Enabled),
        "disabled" => Ok(InjectMode::Disabled),
        _ => Err(error(key, value, "`enabled` or `disabled`")),
    }
}

/// Reads `config.sluice.io/identity`.
pub fn parse_identity(key: &str, value: &str) -> Result<Identity, AnnotationError> {
    match value.trim() {
        "spiffe-csi" => Ok(Identity::SpiffeCsi),
        "cert-manager" => Ok(Identity::CertManager),
        _ => Err(error(key, value, "`spiffe-csi` or `cert-manager`")),
    }
}

/// Reads `config.sluice.io/sidecar`.
pub fn parse_sidecar(key: &str, value: &str) -> Result<Sidecar, AnnotationError> {
    match value.trim() {
        "native" => Ok(Sidecar::Native),
        "classic" => Ok(Sidecar::Classic),
        _ => Err(error(key, value, "`native` or `classic`")),
    }
}

/// Reads `config.sluice.io/app-protocol`.
pub fn parse_app_protocol(key: &str, value: &str) -> Result<AppProtocol, AnnotationError> {
    match value.trim() {
        "auto" => Ok(AppProtocol::Auto),
        "http1" => Ok(AppProtocol::Http1),
        "h2c" => Ok(AppProtocol::H2c),
        _ => Err(error(key, value, "`auto`, `http1` or `h2c`")),
    }
}

fn port(key: &str, value: &str, s: &str) -> Result<u16, AnnotationError> {
    match s.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(error(
            key,
            value,
            "ports from 1 to 65535, separated by commas",
        )),
    }
}

/// Reads a comma-separated list of single ports (`8080,9090`); an empty
/// value is an empty list.
pub fn parse_ports(key: &str, value: &str) -> Result<Vec<u16>, AnnotationError> {
    let mut ports = Vec::new();
    if value.trim().is_empty() {
        return Ok(ports);
    }
    for item in value.split(',') {
        let p = port(key, value, item)?;
        if !ports.contains(&p) {
            ports.push(p);
        }
    }
    Ok(ports)
}

/// Reads a comma-separated list of ports and ranges (`25,8000-8099`); an
/// empty value is an empty list.
pub fn parse_port_ranges(key: &str, value: &str) -> Result<Vec<PortRange>, AnnotationError> {
    let mut ranges = Vec::new();
    if value.trim().is_empty() {
        return Ok(ranges);
    }
    for item in value.split(',') {
        let range = match item.split_once('-') {
            None => PortRange::one(port(key, value, item)?),
            Some((a, b)) => {
                let (first, last) = (port(key, value, a)?, port(key, value, b)?);
                if first > last {
                    return Err(error(
                        key,
                        value,
                        "ranges written `FIRST-LAST` with FIRST <= LAST",
                    ));
                }
                PortRange { first, last }
            }
        };
        if !ranges.contains(&range) {
            ranges.push(range);
        }
    }
    Ok(ranges)
}

/// Reads a Kubernetes object name (a ConfigMap's): a DNS subdomain, at most
/// 253 characters of `a-z`, `0-9`, `-` and `.`, starting and ending with an
/// alphanumeric.
pub fn parse_object_name(key: &str, value: &str) -> Result<String, AnnotationError> {
    let v = value.trim();
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let ok = !v.is_empty()
        && v.len() <= 253
        && v.chars().all(|c| alnum(c) || c == '-' || c == '.')
        && v.starts_with(alnum)
        && v.ends_with(alnum);
    if ok {
        Ok(v.to_owned())
    } else {
        Err(error(
            key,
            value,
            "a Kubernetes object name (lowercase letters, digits, `-` and `.`)",
        ))
    }
}

/// Reads a policy artifact reference: `oci://…` or `https://…`.
pub fn parse_policy_source(key: &str, value: &str) -> Result<String, AnnotationError> {
    let v = value.trim();
    let ok = ["oci://", "https://"]
        .iter()
        .any(|scheme| v.len() > scheme.len() && v.starts_with(scheme))
        && !v.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(v.to_owned())
    } else {
        Err(error(key, value, "an `oci://` or `https://` reference"))
    }
}

/// Reads a trust domain name: lowercase letters, digits, `.`, `-`, `_`.
pub fn parse_trust_domain(key: &str, value: &str) -> Result<String, AnnotationError> {
    let v = value.trim();
    let ok = !v.is_empty()
        && v.len() <= 255
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(v.to_owned())
    } else {
        Err(error(
            key,
            value,
            "a trust domain (lowercase letters, digits, `.`, `-`, `_`)",
        ))
    }
}

/// Reads a container image reference: not empty, no whitespace or control
/// characters.
pub fn parse_image(key: &str, value: &str) -> Result<String, AnnotationError> {
    let v = value.trim();
    if !v.is_empty() && !v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Ok(v.to_owned())
    } else {
        Err(error(key, value, "a container image reference"))
    }
}

/// The value of `key` in an optional annotation map.
pub fn get<'a>(map: Option<&'a BTreeMap<String, String>>, key: &str) -> Option<&'a str> {
    map.and_then(|m| m.get(key)).map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(parse_inject(INJECT, " enabled "), Ok(InjectMode::Enabled));
        assert_eq!(parse_inject(INJECT, "disabled"), Ok(InjectMode::Disabled));
        let e = parse_inject(INJECT, "yes").unwrap_err();
        assert_eq!(
            e.to_string(),
            "`sluice.io/inject: yes` is not valid: expected `enabled` or `disabled`"
        );
        assert_eq!(
            parse_identity(IDENTITY, "cert-manager"),
            Ok(Identity::CertManager)
        );
        assert_eq!(
            parse_identity(IDENTITY, "spiffe-csi"),
            Ok(Identity::SpiffeCsi)
        );
        assert!(parse_identity(IDENTITY, "spire").is_err());
        assert_eq!(parse_sidecar(SIDECAR, "classic"), Ok(Sidecar::Classic));
        assert_eq!(parse_sidecar(SIDECAR, "native"), Ok(Sidecar::Native));
        assert!(parse_sidecar(SIDECAR, "Native").is_err());
    }

    #[test]
    fn app_protocols() {
        for p in [AppProtocol::Auto, AppProtocol::Http1, AppProtocol::H2c] {
            assert_eq!(parse_app_protocol(APP_PROTOCOL, p.as_str()), Ok(p));
            assert_eq!(p.to_string(), p.as_str());
        }
        assert_eq!(
            parse_app_protocol(APP_PROTOCOL, " http1 "),
            Ok(AppProtocol::Http1)
        );
        assert_eq!(AppProtocol::default(), AppProtocol::Auto);
        let e = parse_app_protocol(APP_PROTOCOL, "http2").unwrap_err();
        assert_eq!(
            e.to_string(),
            "`config.sluice.io/app-protocol: http2` is not valid: expected `auto`, `http1` or `h2c`"
        );
        for bad in ["", "HTTP1", "h2", "grpc"] {
            assert!(parse_app_protocol(APP_PROTOCOL, bad).is_err(), "{bad}");
        }
        assert!(CONFIG_KEYS.contains(&APP_PROTOCOL));
    }

    #[test]
    fn config_keys_share_the_prefix() {
        for key in CONFIG_KEYS {
            assert!(key.starts_with(CONFIG_PREFIX), "{key}");
        }
        assert!(!INJECT.starts_with(CONFIG_PREFIX));
    }

    #[test]
    fn ports() {
        assert_eq!(
            parse_ports(INBOUND_PORTS, "8080, 9090,8080"),
            Ok(vec![8080, 9090])
        );
        assert_eq!(parse_ports(INBOUND_PORTS, " "), Ok(vec![]));
        for bad in ["0", "65536", "80,", "x", "80-90"] {
            assert!(parse_ports(INBOUND_PORTS, bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_port_ranges(SKIP_OUTBOUND_PORTS, "25,8000-8099"),
            Ok(vec![
                PortRange::one(25),
                PortRange {
                    first: 8000,
                    last: 8099
                }
            ])
        );
        for bad in ["9-8", "1-", "-1", "0", "25,,26"] {
            assert!(
                parse_port_ranges(SKIP_OUTBOUND_PORTS, bad).is_err(),
                "{bad}"
            );
        }
        let r = PortRange {
            first: 8000,
            last: 8099,
        };
        assert!(r.contains(8000) && r.contains(8099) && !r.contains(8100));
        assert_eq!(r.to_string(), "8000-8099");
        assert_eq!(PortRange::one(25).to_string(), "25");
    }

    #[test]
    fn names_and_references() {
        assert_eq!(
            parse_object_name(POLICY_CONFIGMAP, "web-policy.v1"),
            Ok("web-policy.v1".into())
        );
        for bad in ["", "Web", "-web", "web-", "a b", "web_policy"] {
            assert!(parse_object_name(POLICY_CONFIGMAP, bad).is_err(), "{bad}");
        }
        assert!(parse_policy_source(POLICY_SOURCE, "oci://registry:5000/team/policy:prod").is_ok());
        assert!(parse_policy_source(POLICY_SOURCE, "https://cdn.example/p:v1").is_ok());
        for bad in ["oci://", "http://x/p:v1", "/etc/policy", "oci://a b"] {
            assert!(parse_policy_source(POLICY_SOURCE, bad).is_err(), "{bad}");
        }
        assert!(parse_trust_domain(TRUST_DOMAIN, "prod.example.com").is_ok());
        assert!(parse_trust_domain(TRUST_DOMAIN, "Prod\"").is_err());
        assert!(parse_image(PROXY_IMAGE, "ghcr.io/a/b:1").is_ok());
        assert!(parse_image(PROXY_IMAGE, "a b").is_err());
        assert!(parse_image(PROXY_IMAGE, "").is_err());
    }
}
