//! Pure injection: a pod template's `ObjectMeta` and `PodSpec`, with an
//! [`InjectConfig`], become the same pod with the Sluice proxy added (or an
//! [`InjectError`]); [`uninject_pod`] removes exactly what was added.
//!
//! Everything is built with the Kubernetes API types. `docs/kubernetes.md`
//! ("What inject does to a pod") explains each field.

use crate::annotations::{self as ann, AppProtocol, Identity, InjectMode, PortRange, Sidecar};
use k8s_openapi::api::core::v1::{
    CSIVolumeSource, Capabilities, ConfigMapVolumeSource, Container, ContainerPort,
    DownwardAPIVolumeFile, DownwardAPIVolumeSource, EmptyDirVolumeSource, HTTPGetAction, KeyToPath,
    ObjectFieldSelector, PodSpec, Probe, ResourceRequirements, SecurityContext, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// The Sluice version written in the `sluice.io/injected` marker.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The proxy's user and group id; `sluice init` never redirects its traffic.
pub const PROXY_UID: i64 = 2102;
/// The admin listener's port (`/ready`, `/live`, `/metrics`).
pub const ADMIN_PORT: u16 = 4191;
/// The transparent outbound listener's port (on `127.0.0.1`).
pub const OUTBOUND_PORT: u16 = 4140;
/// The first inbound listener's port; the next inbound port gets 4144, and so on.
pub const FIRST_INBOUND_PROXY_PORT: u16 = 4143;
/// The init container that writes the iptables rules.
pub const INIT_CONTAINER: &str = "sluice-init";
/// The proxy container.
pub const PROXY_CONTAINER: &str = "sluice-proxy";
/// The downward API volume holding `proxy.toml`.
pub const CONFIG_VOLUME: &str = "sluice-proxy-config";
/// Where the proxy configuration is mounted.
pub const CONFIG_DIR: &str = "/etc/sluice/proxy";
/// The proxy configuration's file name in [`CONFIG_DIR`].
pub const CONFIG_FILE: &str = "proxy.toml";
/// The ConfigMap volume with the policy source (or the signer's key).
pub const POLICY_VOLUME: &str = "sluice-policy";
/// Where the policy ConfigMap is mounted.
pub const POLICY_DIR: &str = "/etc/sluice/policy";
/// The key of the policy source in its ConfigMap (and its file name).
pub const POLICY_KEY: &str = "policy.sluice";
/// The key of the signer's public key in its ConfigMap (and its file name).
pub const KEYS_KEY: &str = "signer.pub";
/// The ConfigMap used when neither an annotation nor a flag names a policy.
pub const DEFAULT_POLICY_CONFIGMAP: &str = "sluice-policy";
/// The CSI volume that gives the proxy its identity.
pub const IDENTITY_VOLUME: &str = "sluice-identity";
/// The SPIFFE CSI driver (SPIRE's Workload API socket).
pub const SPIFFE_CSI_DRIVER: &str = "csi.spiffe.io";
/// Where the SPIFFE CSI volume is mounted.
pub const WORKLOAD_API_DIR: &str = "/spiffe-workload-api";
/// The Workload API socket in [`WORKLOAD_API_DIR`].
pub const WORKLOAD_API_SOCKET: &str = "unix:///spiffe-workload-api/spire-agent.sock";
/// cert-manager's csi-driver-spiffe (SVID files).
pub const CERT_MANAGER_CSI_DRIVER: &str = "spiffe.csi.cert-manager.io";
/// Where the cert-manager CSI volume is mounted.
pub const CERT_MANAGER_DIR: &str = "/var/run/secrets/spiffe.io";
/// The cert-manager CSI volume attribute naming the group of the files it
/// writes (0440, in a folder 0550, root's): the proxy's gid, or the proxy
/// cannot read its SVID.
pub const CERT_MANAGER_FS_GROUP: &str = "spiffe.csi.cert-manager.io/fs-group";
/// The emptyDir volume where a remote policy is cached.
pub const CACHE_VOLUME: &str = "sluice-cache";
/// Where the cache volume is mounted.
pub const CACHE_DIR: &str = "/var/cache/sluice";
/// The trust domain used when none is given.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";
/// The most inbound ports one pod can have (4143 up to 4190).
pub const MAX_INBOUND_PORTS: usize = (ADMIN_PORT - FIRST_INBOUND_PROXY_PORT) as usize;

/// Every volume inject adds (those it needs for a given pod).
pub const VOLUMES: [&str; 4] = [CONFIG_VOLUME, POLICY_VOLUME, IDENTITY_VOLUME, CACHE_VOLUME];
/// Every container inject adds.
pub const CONTAINERS: [&str; 2] = [INIT_CONTAINER, PROXY_CONTAINER];

/// The proxy image used when neither an annotation nor a flag names one.
pub fn default_proxy_image() -> String {
    format!("ghcr.io/sluice-mesh/sluice:{VERSION}")
}

/// Where the policy comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicySource {
    /// A ConfigMap (by name) whose key `policy.sluice` is the source; the
    /// proxy compiles it at start and again when the ConfigMap changes.
    ConfigMap(String),
    /// A signed artifact pulled by the proxy.
    Remote {
        /// `oci://…` or `https://…`.
        reference: String,
        /// A ConfigMap (by name) whose key `signer.pub` is the signer's key.
        keys_configmap: String,
    },
}

/// The settings that apply when a pod's annotations say nothing (the
/// `sluice inject` flags, or the webhook's defaults). A pod's
/// `config.sluice.io/*` annotations win over these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InjectConfig {
    /// The proxy (and init) container image.
    pub proxy_image: String,
    /// Native or classic sidecar.
    pub sidecar: Sidecar,
    /// Where the SVID comes from.
    pub identity: Identity,
    /// The trust domain of the cert-manager trust bundle.
    pub trust_domain: String,
    /// Where the policy comes from.
    pub policy: PolicySource,
    /// The application ports the proxy stands in front of; `None`: every
    /// TCP `containerPort` of the pod's containers.
    pub inbound_ports: Option<Vec<u16>>,
    /// Incoming ports never redirected (besides the admin port).
    pub skip_inbound_ports: Vec<PortRange>,
    /// Outgoing ports never redirected.
    pub skip_outbound_ports: Vec<PortRange>,
    /// What every inbound listener forwards HTTP to the application as.
    pub app_protocol: AppProtocol,
}

impl Default for InjectConfig {
    fn default() -> Self {
        InjectConfig {
            proxy_image: default_proxy_image(),
            sidecar: Sidecar::Native,
            identity: Identity::SpiffeCsi,
            trust_domain: DEFAULT_TRUST_DOMAIN.to_owned(),
            policy: PolicySource::ConfigMap(DEFAULT_POLICY_CONFIGMAP.to_owned()),
            inbound_ports: None,
            skip_inbound_ports: Vec::new(),
            skip_outbound_ports: Vec::new(),
            app_protocol: AppProtocol::Auto,
        }
    }
}

/// The result of [`inject_pod`].
#[derive(Clone, Debug, PartialEq)]
// Made once per pod and matched at once: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Injection {
    /// The pod with the proxy added.
    Injected {
        /// The pod's metadata with the marker and the proxy configuration.
        meta: ObjectMeta,
        /// The pod's spec with the containers and volumes.
        spec: PodSpec,
    },
    /// Nothing to do.
    Skipped(SkipReason),
}

/// Why a pod was left as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// It carries `sluice.io/injected`.
    AlreadyInjected,
    /// It says `sluice.io/inject: disabled`.
    Disabled,
    /// Neither the pod nor its namespace asks for the proxy.
    NotOptedIn,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SkipReason::AlreadyInjected => "already injected (`sluice.io/injected`)",
            SkipReason::Disabled => "injection disabled (`sluice.io/inject: disabled`)",
            SkipReason::NotOptedIn => "neither the pod nor its namespace enables injection",
        })
    }
}

/// A pod the proxy cannot be added to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InjectError {
    /// `hostNetwork: true`: the pod shares the node's network namespace.
    HostNetwork {
        /// The pod's name, when it has one (templates usually do not).
        pod: Option<String>,
    },
    /// An annotation's value cannot be read.
    Annotation(ann::AnnotationError),
    /// A container or volume already has a name inject uses.
    NameTaken {
        /// `container`, `init container` or `volume`.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// A container of the pod uses a port the proxy listens on.
    PortTaken {
        /// The port.
        port: u16,
        /// The container.
        container: String,
    },
    /// An inbound port is one of the proxy's own ports.
    InboundPortReserved {
        /// The port.
        port: u16,
    },
    /// More inbound ports than the proxy has listener ports for.
    TooManyInboundPorts {
        /// How many were asked for.
        count: usize,
    },
    /// A `config.sluice.io/` annotation this version does not read (a typo
    /// would otherwise be ignored in silence).
    UnknownAnnotation {
        /// The key.
        key: String,
    },
    /// Both `policy-configmap` and `policy-source` are annotated.
    ConflictingPolicy,
    /// A `policy-source` without a `policy-keys-configmap`.
    MissingPolicyKeys {
        /// The reference.
        reference: String,
    },
    /// The proxy configuration could not be written (a bug).
    ProxyConfig {
        /// The TOML serializer's message.
        message: String,
    },
}

impl fmt::Display for InjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InjectError::HostNetwork { pod } => {
                match pod {
                    Some(name) => write!(f, "pod `{name}` uses `hostNetwork: true`")?,
                    None => f.write_str("the pod template uses `hostNetwork: true`")?,
                }
                write!(
                    f,
                    ": the proxy cannot be injected, since `sluice init` would redirect \
                     the node's own traffic; annotate it `{}: disabled` to leave it out",
                    ann::INJECT
                )
            }
            InjectError::Annotation(e) => e.fmt(f),
            InjectError::NameTaken { what, name } => write!(
                f,
                "the pod already has a {what} named `{name}`, a name the proxy injection uses"
            ),
            InjectError::PortTaken { port, container } => write!(
                f,
                "container `{container}` uses port `{port}`, which the proxy listens on \
                 (ports {OUTBOUND_PORT}, {FIRST_INBOUND_PROXY_PORT} and up, {ADMIN_PORT})"
            ),
            InjectError::InboundPortReserved { port } => write!(
                f,
                "inbound port `{port}` is one of the proxy's own ports \
                 ({OUTBOUND_PORT}, {FIRST_INBOUND_PROXY_PORT} and up, {ADMIN_PORT})"
            ),
            InjectError::TooManyInboundPorts { count } => write!(
                f,
                "{count} inbound ports, but the proxy has listener ports for at most \
                 {MAX_INBOUND_PORTS}; list the ports to serve in `{}`",
                ann::INBOUND_PORTS
            ),
            InjectError::UnknownAnnotation { key } => write!(
                f,
                "annotation `{key}` is not one this Sluice reads; it reads {}",
                ann::CONFIG_KEYS
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            InjectError::ConflictingPolicy => write!(
                f,
                "`{}` and `{}` are both set; the policy comes from one of them",
                ann::POLICY_CONFIGMAP,
                ann::POLICY_SOURCE
            ),
            InjectError::MissingPolicyKeys { reference } => write!(
                f,
                "policy source `{reference}` needs `{}`: a ConfigMap whose key `{KEYS_KEY}` \
                 verifies the artifact's signature",
                ann::POLICY_KEYS_CONFIGMAP
            ),
            InjectError::ProxyConfig { message } => {
                write!(f, "cannot write the proxy configuration: {message}")
            }
        }
    }
}

impl std::error::Error for InjectError {}

impl From<ann::AnnotationError> for InjectError {
    fn from(e: ann::AnnotationError) -> Self {
        InjectError::Annotation(e)
    }
}

/// The settings for one pod: the config overridden by its annotations.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Settings {
    proxy_image: String,
    sidecar: Sidecar,
    identity: Identity,
    trust_domain: String,
    policy: PolicySource,
    inbound_ports: Option<Vec<u16>>,
    skip_inbound_ports: Vec<PortRange>,
    skip_outbound_ports: Vec<PortRange>,
    app_protocol: AppProtocol,
}

fn settings(meta: &ObjectMeta, config: &InjectConfig) -> Result<Settings, InjectError> {
    let a = meta.annotations.as_ref();
    if let Some(key) = a
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
        .find(|k| k.starts_with(ann::CONFIG_PREFIX) && !ann::CONFIG_KEYS.contains(&k.as_str()))
    {
        return Err(InjectError::UnknownAnnotation { key: key.clone() });
    }
    let read = |key: &str| ann::get(a, key);
    let mut s = Settings {
        proxy_image: config.proxy_image.clone(),
        sidecar: config.sidecar,
        identity: config.identity,
        trust_domain: config.trust_domain.clone(),
        policy: config.policy.clone(),
        inbound_ports: config.inbound_ports.clone(),
        skip_inbound_ports: config.skip_inbound_ports.clone(),
        skip_outbound_ports: config.skip_outbound_ports.clone(),
        app_protocol: config.app_protocol,
    };
    if let Some(v) = read(ann::PROXY_IMAGE) {
        s.proxy_image = ann::parse_image(ann::PROXY_IMAGE, v)?;
    }
    if let Some(v) = read(ann::SIDECAR) {
        s.sidecar = ann::parse_sidecar(ann::SIDECAR, v)?;
    }
    if let Some(v) = read(ann::IDENTITY) {
        s.identity = ann::parse_identity(ann::IDENTITY, v)?;
    }
    if let Some(v) = read(ann::TRUST_DOMAIN) {
        s.trust_domain = ann::parse_trust_domain(ann::TRUST_DOMAIN, v)?;
    }
    if let Some(v) = read(ann::APP_PROTOCOL) {
        s.app_protocol = ann::parse_app_protocol(ann::APP_PROTOCOL, v)?;
    }
    if let Some(v) = read(ann::INBOUND_PORTS) {
        s.inbound_ports = Some(ann::parse_ports(ann::INBOUND_PORTS, v)?);
    }
    if let Some(v) = read(ann::SKIP_INBOUND_PORTS) {
        s.skip_inbound_ports = ann::parse_port_ranges(ann::SKIP_INBOUND_PORTS, v)?;
    }
    if let Some(v) = read(ann::SKIP_OUTBOUND_PORTS) {
        s.skip_outbound_ports = ann::parse_port_ranges(ann::SKIP_OUTBOUND_PORTS, v)?;
    }
    let keys = read(ann::POLICY_KEYS_CONFIGMAP)
        .map(|v| ann::parse_object_name(ann::POLICY_KEYS_CONFIGMAP, v))
        .transpose()?;
    match (read(ann::POLICY_CONFIGMAP), read(ann::POLICY_SOURCE)) {
        (Some(_), Some(_)) => return Err(InjectError::ConflictingPolicy),
        (Some(v), None) => {
            s.policy = PolicySource::ConfigMap(ann::parse_object_name(ann::POLICY_CONFIGMAP, v)?)
        }
        (None, Some(v)) => {
            let reference = ann::parse_policy_source(ann::POLICY_SOURCE, v)?;
            let keys_configmap = match (keys, &config.policy) {
                (Some(k), _) => k,
                (None, PolicySource::Remote { keys_configmap, .. }) => keys_configmap.clone(),
                (None, PolicySource::ConfigMap(_)) => {
                    return Err(InjectError::MissingPolicyKeys { reference })
                }
            };
            s.policy = PolicySource::Remote {
                reference,
                keys_configmap,
            };
        }
        (None, None) => {
            if let (Some(k), PolicySource::Remote { keys_configmap, .. }) = (keys, &mut s.policy) {
                *keys_configmap = k;
            }
        }
    }
    Ok(s)
}

/// The ports a container declares for TCP (`protocol` unset or `TCP`).
fn tcp_ports(c: &Container) -> impl Iterator<Item = u16> + '_ {
    c.ports
        .iter()
        .flatten()
        .filter(|p| p.protocol.as_deref().is_none_or(|proto| proto == "TCP"))
        .filter_map(|p| u16::try_from(p.container_port).ok())
}

fn is_proxy_port(port: u16) -> bool {
    port == OUTBOUND_PORT
        || port == ADMIN_PORT
        || (FIRST_INBOUND_PROXY_PORT..ADMIN_PORT).contains(&port)
}

/// The application ports the proxy stands in front of, in order.
fn inbound_ports(spec: &PodSpec, s: &Settings) -> Result<Vec<u16>, InjectError> {
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        if let Some(port) = tcp_ports(c).find(|&p| is_proxy_port(p)) {
            return Err(InjectError::PortTaken {
                port,
                container: c.name.clone(),
            });
        }
    }
    let mut ports: Vec<u16> = match &s.inbound_ports {
        Some(listed) => listed.clone(),
        None => {
            let mut found = Vec::new();
            for p in spec.containers.iter().flat_map(tcp_ports) {
                if !found.contains(&p) {
                    found.push(p);
                }
            }
            found
        }
    };
    ports.retain(|&p| !s.skip_inbound_ports.iter().any(|r| r.contains(p)));
    if let Some(&port) = ports.iter().find(|&&p| is_proxy_port(p)) {
        return Err(InjectError::InboundPortReserved { port });
    }
    if ports.len() > MAX_INBOUND_PORTS {
        return Err(InjectError::TooManyInboundPorts { count: ports.len() });
    }
    Ok(ports)
}

/// The proxy's TOML configuration, as the proxy reads it.
#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct ProxyToml {
    policy: PolicyToml,
    admin: AdminToml,
    identity: IdentityToml,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    inbound: Vec<InboundToml>,
    outbound: Vec<OutboundToml>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct PolicyToml {
    source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    keys: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_dir: Option<String>,
}

#[derive(Serialize)]
struct AdminToml {
    listen: String,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct IdentityToml {
    #[serde(skip_serializing_if = "Option::is_none")]
    workload_api: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cert: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    trust_bundles: BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct InboundToml {
    listen: String,
    port: u16,
    app: String,
    tls: &'static str,
    /// Not written for `auto`, the proxy's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    app_protocol: Option<&'static str>,
}

#[derive(Serialize)]
struct OutboundToml {
    listen: String,
    mode: &'static str,
}

fn proxy_toml(s: &Settings, ports: &[u16]) -> Result<String, InjectError> {
    let policy = match &s.policy {
        PolicySource::ConfigMap(_) => PolicyToml {
            source: format!("{POLICY_DIR}/{POLICY_KEY}"),
            keys: None,
            cache_dir: None,
        },
        PolicySource::Remote { reference, .. } => PolicyToml {
            source: reference.clone(),
            keys: Some(vec![format!("{POLICY_DIR}/{KEYS_KEY}")]),
            cache_dir: Some(CACHE_DIR.to_owned()),
        },
    };
    let identity = match s.identity {
        Identity::SpiffeCsi => IdentityToml {
            workload_api: Some(WORKLOAD_API_SOCKET.to_owned()),
            cert: None,
            key: None,
            trust_bundles: BTreeMap::new(),
        },
        Identity::CertManager => IdentityToml {
            workload_api: None,
            cert: Some(format!("{CERT_MANAGER_DIR}/tls.crt")),
            key: Some(format!("{CERT_MANAGER_DIR}/tls.key")),
            trust_bundles: BTreeMap::from([(
                s.trust_domain.clone(),
                format!("{CERT_MANAGER_DIR}/ca.crt"),
            )]),
        },
    };
    let config = ProxyToml {
        policy,
        admin: AdminToml {
            listen: format!("0.0.0.0:{ADMIN_PORT}"),
        },
        identity,
        inbound: inbound_listeners(ports)
            .map(|(listen, app)| InboundToml {
                listen: format!("0.0.0.0:{listen}"),
                port: app,
                app: format!("127.0.0.1:{app}"),
                tls: "permissive",
                app_protocol: match s.app_protocol {
                    AppProtocol::Auto => None,
                    p => Some(p.as_str()),
                },
            })
            .collect(),
        outbound: vec![OutboundToml {
            listen: format!("127.0.0.1:{OUTBOUND_PORT}"),
            mode: "transparent",
        }],
    };
    toml::to_string(&config).map_err(|e| InjectError::ProxyConfig {
        message: e.to_string(),
    })
}

/// (proxy listener port, application port) for each inbound port.
fn inbound_listeners(ports: &[u16]) -> impl Iterator<Item = (u16, u16)> + '_ {
    ports
        .iter()
        .zip(FIRST_INBOUND_PROXY_PORT..)
        .map(|(&app, listen)| (listen, app))
}

fn join<T: fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn init_container(s: &Settings, ports: &[u16]) -> Container {
    let mut command: Vec<String> = [
        "sluice",
        "init",
        "--outbound-port",
        &OUTBOUND_PORT.to_string(),
        "--proxy-uid",
        &PROXY_UID.to_string(),
    ]
    .map(str::to_owned)
    .to_vec();
    for (listen, app) in inbound_listeners(ports) {
        command.push("--inbound".into());
        command.push(format!("{app}={listen}"));
    }
    // `sluice init` refuses skipped inbound ports without `--inbound`: a
    // pod with no inbound port (a Job) has nothing to skip.
    if !ports.is_empty() {
        let mut skip_in = vec![PortRange::one(ADMIN_PORT)];
        skip_in.extend(
            s.skip_inbound_ports
                .iter()
                .filter(|r| **r != PortRange::one(ADMIN_PORT)),
        );
        command.push("--skip-inbound-ports".into());
        command.push(join(&skip_in));
    }
    if !s.skip_outbound_ports.is_empty() {
        command.push("--skip-outbound-ports".into());
        command.push(join(&s.skip_outbound_ports));
    }
    Container {
        name: INIT_CONTAINER.to_owned(),
        image: Some(s.proxy_image.clone()),
        command: Some(command),
        security_context: Some(SecurityContext {
            capabilities: Some(Capabilities {
                add: Some(vec!["NET_ADMIN".into(), "NET_RAW".into()]),
                drop: Some(vec!["ALL".into()]),
            }),
            run_as_user: Some(0),
            run_as_non_root: Some(false),
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }
}

fn http_probe(path: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::Int(i32::from(ADMIN_PORT)),
            ..HTTPGetAction::default()
        }),
        ..Probe::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: Some(read_only),
        ..VolumeMount::default()
    }
}

fn proxy_container(s: &Settings) -> Container {
    let mut mounts = vec![
        mount(CONFIG_VOLUME, CONFIG_DIR, true),
        mount(POLICY_VOLUME, POLICY_DIR, true),
    ];
    mounts.push(match s.identity {
        Identity::SpiffeCsi => mount(IDENTITY_VOLUME, WORKLOAD_API_DIR, true),
        Identity::CertManager => mount(IDENTITY_VOLUME, CERT_MANAGER_DIR, true),
    });
    if matches!(s.policy, PolicySource::Remote { .. }) {
        mounts.push(mount(CACHE_VOLUME, CACHE_DIR, false));
    }
    let quantity = |q: &str| Quantity(q.to_owned());
    Container {
        name: PROXY_CONTAINER.to_owned(),
        image: Some(s.proxy_image.clone()),
        command: Some(
            [
                "sluice",
                "proxy",
                "--config",
                &format!("{CONFIG_DIR}/{CONFIG_FILE}"),
            ]
            .map(str::to_owned)
            .to_vec(),
        ),
        ports: Some(vec![ContainerPort {
            container_port: i32::from(ADMIN_PORT),
            name: Some("sluice-admin".to_owned()),
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        readiness_probe: Some(http_probe("/ready")),
        liveness_probe: Some(Probe {
            initial_delay_seconds: Some(10),
            ..http_probe("/live")
        }),
        restart_policy: match s.sidecar {
            Sidecar::Native => Some("Always".to_owned()),
            Sidecar::Classic => None,
        },
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_owned(), quantity("10m")),
                ("memory".to_owned(), quantity("20Mi")),
            ])),
            limits: Some(BTreeMap::from([("memory".to_owned(), quantity("250Mi"))])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            run_as_user: Some(PROXY_UID),
            run_as_group: Some(PROXY_UID),
            run_as_non_root: Some(true),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                add: None,
                drop: Some(vec!["ALL".into()]),
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(mounts),
        ..Container::default()
    }
}

fn volumes(s: &Settings) -> Vec<Volume> {
    let config = Volume {
        name: CONFIG_VOLUME.to_owned(),
        downward_api: Some(DownwardAPIVolumeSource {
            items: Some(vec![DownwardAPIVolumeFile {
                path: CONFIG_FILE.to_owned(),
                field_ref: Some(ObjectFieldSelector {
                    field_path: format!("metadata.annotations['{}']", ann::PROXY_CONFIG),
                    ..ObjectFieldSelector::default()
                }),
                ..DownwardAPIVolumeFile::default()
            }]),
            ..DownwardAPIVolumeSource::default()
        }),
        ..Volume::default()
    };
    let (configmap, key) = match &s.policy {
        PolicySource::ConfigMap(name) => (name.clone(), POLICY_KEY),
        PolicySource::Remote { keys_configmap, .. } => (keys_configmap.clone(), KEYS_KEY),
    };
    let policy = Volume {
        name: POLICY_VOLUME.to_owned(),
        config_map: Some(ConfigMapVolumeSource {
            name: configmap,
            items: Some(vec![KeyToPath {
                key: key.to_owned(),
                path: key.to_owned(),
                ..KeyToPath::default()
            }]),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    };
    let identity = Volume {
        name: IDENTITY_VOLUME.to_owned(),
        csi: Some(CSIVolumeSource {
            driver: match s.identity {
                Identity::SpiffeCsi => SPIFFE_CSI_DRIVER,
                Identity::CertManager => CERT_MANAGER_CSI_DRIVER,
            }
            .to_owned(),
            read_only: Some(true),
            volume_attributes: match s.identity {
                Identity::SpiffeCsi => None,
                Identity::CertManager => Some(BTreeMap::from([(
                    CERT_MANAGER_FS_GROUP.to_owned(),
                    PROXY_UID.to_string(),
                )])),
            },
            ..CSIVolumeSource::default()
        }),
        ..Volume::default()
    };
    let mut volumes = vec![config, policy, identity];
    if matches!(s.policy, PolicySource::Remote { .. }) {
        volumes.push(Volume {
            name: CACHE_VOLUME.to_owned(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        });
    }
    volumes
}

fn check_names(spec: &PodSpec) -> Result<(), InjectError> {
    let taken = |what, name: &str| {
        Err(InjectError::NameTaken {
            what,
            name: name.to_owned(),
        })
    };
    for c in &spec.containers {
        if CONTAINERS.contains(&c.name.as_str()) {
            return taken("container", &c.name);
        }
    }
    for c in spec.init_containers.iter().flatten() {
        if CONTAINERS.contains(&c.name.as_str()) {
            return taken("init container", &c.name);
        }
    }
    for v in spec.volumes.iter().flatten() {
        if VOLUMES.contains(&v.name.as_str()) {
            return taken("volume", &v.name);
        }
    }
    Ok(())
}

/// Whether the pod carries the `sluice.io/injected` marker.
pub fn is_injected(meta: &ObjectMeta) -> bool {
    ann::get(meta.annotations.as_ref(), ann::INJECTED).is_some()
}

/// Adds the proxy to a pod (or a pod template).
///
/// `namespace_opted_in`: the pod's namespace asks for injection (the
/// webhook's namespace label), or the user did (`sluice inject`). The pod's
/// own `sluice.io/inject` wins: `disabled` is always respected.
pub fn inject_pod(
    meta: &ObjectMeta,
    spec: &PodSpec,
    namespace_opted_in: bool,
    config: &InjectConfig,
) -> Result<Injection, InjectError> {
    if is_injected(meta) {
        return Ok(Injection::Skipped(SkipReason::AlreadyInjected));
    }
    let mode = ann::get(meta.annotations.as_ref(), ann::INJECT)
        .map(|v| ann::parse_inject(ann::INJECT, v))
        .transpose()?;
    match mode {
        Some(InjectMode::Disabled) => return Ok(Injection::Skipped(SkipReason::Disabled)),
        None if !namespace_opted_in => return Ok(Injection::Skipped(SkipReason::NotOptedIn)),
        Some(InjectMode::Enabled) | None => {}
    }
    if spec.host_network == Some(true) {
        return Err(InjectError::HostNetwork {
            pod: meta.name.clone(),
        });
    }
    check_names(spec)?;
    let s = settings(meta, config)?;
    let ports = inbound_ports(spec, &s)?;
    let toml = proxy_toml(&s, &ports)?;

    let mut meta = meta.clone();
    let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(ann::INJECTED.to_owned(), VERSION.to_owned());
    annotations.insert(ann::PROXY_CONFIG.to_owned(), toml);

    let mut spec = spec.clone();
    let init = init_container(&s, &ports);
    let proxy = proxy_container(&s);
    let init_containers = spec.init_containers.get_or_insert_with(Vec::new);
    match s.sidecar {
        Sidecar::Native => {
            init_containers.splice(0..0, [init, proxy]);
        }
        Sidecar::Classic => {
            init_containers.push(init);
            spec.containers.insert(0, proxy);
        }
    }
    spec.volumes
        .get_or_insert_with(Vec::new)
        .extend(volumes(&s));
    Ok(Injection::Injected { meta, spec })
}

/// The result of [`uninject_pod`].
#[derive(Clone, Debug, PartialEq)]
// Made once per pod and matched at once: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Uninjection {
    /// The pod without what inject added.
    Uninjected {
        /// The metadata without the marker and the proxy configuration.
        meta: ObjectMeta,
        /// The spec without the containers and volumes.
        spec: PodSpec,
    },
    /// The pod has no `sluice.io/injected` marker: left as it is.
    NotInjected,
}

/// Removes what [`inject_pod`] added: the two containers (wherever they
/// are), the volumes, the marker and the proxy configuration. Lists and maps
/// left empty are removed.
pub fn uninject_pod(meta: &ObjectMeta, spec: &PodSpec) -> Uninjection {
    if !is_injected(meta) {
        return Uninjection::NotInjected;
    }
    let mut meta = meta.clone();
    if let Some(a) = &mut meta.annotations {
        a.remove(ann::INJECTED);
        a.remove(ann::PROXY_CONFIG);
        if a.is_empty() {
            meta.annotations = None;
        }
    }
    let mut spec = spec.clone();
    let ours = |c: &Container| CONTAINERS.contains(&c.name.as_str());
    spec.containers.retain(|c| !ours(c));
    if let Some(init) = &mut spec.init_containers {
        init.retain(|c| !ours(c));
        if init.is_empty() {
            spec.init_containers = None;
        }
    }
    if let Some(volumes) = &mut spec.volumes {
        volumes.retain(|v| !VOLUMES.contains(&v.name.as_str()));
        if volumes.is_empty() {
            spec.volumes = None;
        }
    }
    Uninjection::Uninjected { meta, spec }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    fn pod(yaml: &str) -> (ObjectMeta, PodSpec) {
        let pod: Pod = serde_yaml_ng::from_str(yaml).unwrap();
        (pod.metadata, pod.spec.unwrap())
    }

    const WEB: &str = "
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: app
    image: example/web:1
    ports:
    - containerPort: 8080
    - containerPort: 9090
      protocol: TCP
    - containerPort: 5353
      protocol: UDP
  - name: metrics
    image: example/metrics:1
    ports:
    - containerPort: 8080
    - containerPort: 9100
";

    fn injected(meta: &ObjectMeta, spec: &PodSpec, config: &InjectConfig) -> (ObjectMeta, PodSpec) {
        match inject_pod(meta, spec, true, config).unwrap() {
            Injection::Injected { meta, spec } => (meta, spec),
            other => panic!("not injected: {other:?}"),
        }
    }

    fn container<'a>(list: &'a [Container], name: &str) -> &'a Container {
        list.iter().find(|c| c.name == name).unwrap()
    }

    fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> &'a str {
        ann::get(meta.annotations.as_ref(), key).unwrap()
    }

    #[test]
    fn adds_exactly_the_design() {
        let (meta, spec) = pod(WEB);
        let (m, s) = injected(&meta, &spec, &InjectConfig::default());
        // Metadata: the marker and the proxy configuration, nothing else.
        let added: Vec<&String> = m.annotations.as_ref().unwrap().keys().collect();
        assert_eq!(added, [ann::INJECTED, ann::PROXY_CONFIG]);
        assert_eq!(annotation(&m, ann::INJECTED), VERSION);
        assert_eq!(m.labels, meta.labels);
        // Containers: the app's unchanged; native sidecar first in initContainers.
        assert_eq!(s.containers, spec.containers);
        let init = s.init_containers.as_ref().unwrap();
        assert_eq!(
            init.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            [INIT_CONTAINER, PROXY_CONTAINER]
        );
        let i = &init[0];
        assert_eq!(i.image.as_deref(), Some(default_proxy_image().as_str()));
        assert_eq!(
            i.command.as_deref().unwrap(),
            [
                "sluice",
                "init",
                "--outbound-port",
                "4140",
                "--proxy-uid",
                "2102",
                "--inbound",
                "8080=4143",
                "--inbound",
                "9090=4144",
                "--inbound",
                "9100=4145",
                "--skip-inbound-ports",
                "4191",
            ]
        );
        let sc = i.security_context.as_ref().unwrap();
        let caps = sc.capabilities.as_ref().unwrap();
        assert_eq!(caps.add.as_deref().unwrap(), ["NET_ADMIN", "NET_RAW"]);
        assert_eq!(caps.drop.as_deref().unwrap(), ["ALL"]);
        assert_eq!((sc.run_as_user, sc.run_as_non_root), (Some(0), Some(false)));

        let p = &init[1];
        assert_eq!(p.restart_policy.as_deref(), Some("Always"));
        assert_eq!(
            p.command.as_deref().unwrap(),
            [
                "sluice",
                "proxy",
                "--config",
                "/etc/sluice/proxy/proxy.toml"
            ]
        );
        let sc = p.security_context.as_ref().unwrap();
        assert_eq!((sc.run_as_user, sc.run_as_group), (Some(2102), Some(2102)));
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(
            sc.capabilities.as_ref().unwrap().drop.as_deref().unwrap(),
            ["ALL"]
        );
        assert_eq!(sc.capabilities.as_ref().unwrap().add, None);
        let probe = |p: &Option<Probe>| {
            let h = p.as_ref().unwrap().http_get.as_ref().unwrap();
            (h.path.clone().unwrap(), h.port.clone())
        };
        assert_eq!(
            probe(&p.readiness_probe),
            ("/ready".into(), IntOrString::Int(4191))
        );
        assert_eq!(
            probe(&p.liveness_probe),
            ("/live".into(), IntOrString::Int(4191))
        );
        let r = p.resources.as_ref().unwrap();
        let q = |m: &Option<BTreeMap<String, Quantity>>, k: &str| m.as_ref().unwrap()[k].0.clone();
        assert_eq!(q(&r.requests, "cpu"), "10m");
        assert_eq!(q(&r.requests, "memory"), "20Mi");
        assert_eq!(q(&r.limits, "memory"), "250Mi");
        assert_eq!(r.limits.as_ref().unwrap().len(), 1);
        let mounts: Vec<(&str, &str, Option<bool>)> = p
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| (m.name.as_str(), m.mount_path.as_str(), m.read_only))
            .collect();
        assert_eq!(
            mounts,
            [
                ("sluice-proxy-config", "/etc/sluice/proxy", Some(true)),
                ("sluice-policy", "/etc/sluice/policy", Some(true)),
                ("sluice-identity", "/spiffe-workload-api", Some(true)),
            ]
        );
        // Volumes: config from the annotation, the policy ConfigMap, the SPIFFE CSI socket.
        let v = s.volumes.as_ref().unwrap();
        assert_eq!(
            v.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(),
            [CONFIG_VOLUME, POLICY_VOLUME, IDENTITY_VOLUME]
        );
        let files = v[0].downward_api.as_ref().unwrap().items.as_ref().unwrap();
        assert_eq!(files[0].path, "proxy.toml");
        assert_eq!(
            files[0].field_ref.as_ref().unwrap().field_path,
            "metadata.annotations['sluice.io/proxy-config']"
        );
        let cm = v[1].config_map.as_ref().unwrap();
        assert_eq!(cm.name, DEFAULT_POLICY_CONFIGMAP);
        assert_eq!(cm.items.as_ref().unwrap()[0].key, "policy.sluice");
        let csi = v[2].csi.as_ref().unwrap();
        assert_eq!(
            (csi.driver.as_str(), csi.read_only),
            ("csi.spiffe.io", Some(true))
        );
        // The rest of the spec is as it was.
        let strip = |mut s: PodSpec| {
            s.init_containers = None;
            s.volumes = None;
            s
        };
        assert_eq!(strip(s), strip(spec));
    }

    #[test]
    fn proxy_toml_is_built_from_data() {
        let (meta, spec) = pod(WEB);
        let (m, _) = injected(&meta, &spec, &InjectConfig::default());
        let toml: toml::Value = toml::from_str(annotation(&m, ann::PROXY_CONFIG)).unwrap();
        let expected: toml::Value = toml::from_str(
            r#"
            [policy]
            source = "/etc/sluice/policy/policy.sluice"
            [admin]
            listen = "0.0.0.0:4191"
            [identity]
            workload-api = "unix:///spiffe-workload-api/spire-agent.sock"
            [[inbound]]
            listen = "0.0.0.0:4143"
            port = 8080
            app = "127.0.0.1:8080"
            tls = "permissive"
            [[inbound]]
            listen = "0.0.0.0:4144"
            port = 9090
            app = "127.0.0.1:9090"
            tls = "permissive"
            [[inbound]]
            listen = "0.0.0.0:4145"
            port = 9100
            app = "127.0.0.1:9100"
            tls = "permissive"
            [[outbound]]
            listen = "127.0.0.1:4140"
            mode = "transparent"
            "#,
        )
        .unwrap();
        assert_eq!(toml, expected);
    }

    #[test]
    fn twice_is_once_and_disabled_is_respected() {
        let (meta, spec) = pod(WEB);
        let config = InjectConfig::default();
        let (m, s) = injected(&meta, &spec, &config);
        assert_eq!(
            inject_pod(&m, &s, true, &config),
            Ok(Injection::Skipped(SkipReason::AlreadyInjected))
        );
        let mut off = meta.clone();
        off.annotations = Some(BTreeMap::from([(
            ann::INJECT.to_owned(),
            "disabled".to_owned(),
        )]));
        assert_eq!(
            inject_pod(&off, &spec, true, &config),
            Ok(Injection::Skipped(SkipReason::Disabled))
        );
        assert_eq!(
            inject_pod(&meta, &spec, false, &config),
            Ok(Injection::Skipped(SkipReason::NotOptedIn))
        );
        let mut on = meta.clone();
        on.annotations = Some(BTreeMap::from([(
            ann::INJECT.to_owned(),
            "enabled".to_owned(),
        )]));
        assert!(matches!(
            inject_pod(&on, &spec, false, &config),
            Ok(Injection::Injected { .. })
        ));
        on.annotations = Some(BTreeMap::from([(ann::INJECT.to_owned(), "on".to_owned())]));
        assert!(matches!(
            inject_pod(&on, &spec, true, &config),
            Err(InjectError::Annotation(_))
        ));
    }

    #[test]
    fn host_network_is_refused_by_name() {
        let (meta, mut spec) = pod(WEB);
        spec.host_network = Some(true);
        let e = inject_pod(&meta, &spec, true, &InjectConfig::default()).unwrap_err();
        assert_eq!(
            e,
            InjectError::HostNetwork {
                pod: Some("web".into())
            }
        );
        let message = e.to_string();
        assert!(
            message.starts_with("pod `web` uses `hostNetwork: true`"),
            "{message}"
        );
        assert!(message.contains("sluice.io/inject: disabled"), "{message}");
    }

    #[test]
    fn ports_from_annotations() {
        let (mut meta, spec) = pod(WEB);
        meta.annotations = Some(BTreeMap::from([
            (ann::INBOUND_PORTS.to_owned(), "9090,8080".to_owned()),
            (ann::SKIP_INBOUND_PORTS.to_owned(), "8080,22".to_owned()),
            (
                ann::SKIP_OUTBOUND_PORTS.to_owned(),
                "25,8000-8099".to_owned(),
            ),
        ]));
        let (_, s) = injected(&meta, &spec, &InjectConfig::default());
        let init = container(s.init_containers.as_ref().unwrap(), INIT_CONTAINER);
        assert_eq!(
            init.command.as_deref().unwrap()[6..],
            [
                "--inbound",
                "9090=4143",
                "--skip-inbound-ports",
                "4191,8080,22",
                "--skip-outbound-ports",
                "25,8000-8099",
            ]
        );
        // Flags are the defaults; annotations win.
        let config = InjectConfig {
            inbound_ports: Some(vec![7000]),
            skip_outbound_ports: vec![PortRange::one(3306)],
            ..InjectConfig::default()
        };
        let (plain_meta, _) = pod(WEB);
        let (_, s) = injected(&plain_meta, &spec, &config);
        let init = container(s.init_containers.as_ref().unwrap(), INIT_CONTAINER);
        assert_eq!(
            init.command.as_deref().unwrap()[6..],
            [
                "--inbound",
                "7000=4143",
                "--skip-inbound-ports",
                "4191",
                "--skip-outbound-ports",
                "3306"
            ]
        );
        let (_, s) = injected(&meta, &spec, &config);
        let init = container(s.init_containers.as_ref().unwrap(), INIT_CONTAINER);
        assert_eq!(init.command.as_deref().unwrap()[7], "9090=4143");
    }

    #[test]
    fn app_protocol_goes_into_every_inbound() {
        let protocols = |m: &ObjectMeta| -> Vec<Option<String>> {
            let toml: toml::Value = toml::from_str(annotation(m, ann::PROXY_CONFIG)).unwrap();
            toml["inbound"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| {
                    i.get("app-protocol")
                        .map(|p| p.as_str().unwrap().to_owned())
                })
                .collect()
        };
        let (meta, spec) = pod(WEB);
        // `auto`, the proxy's default, is not written.
        let (m, _) = injected(&meta, &spec, &InjectConfig::default());
        assert_eq!(protocols(&m), [None, None, None]);
        // The flag's value when the pod says nothing.
        let http1 = InjectConfig {
            app_protocol: AppProtocol::Http1,
            ..InjectConfig::default()
        };
        let (m, _) = injected(&meta, &spec, &http1);
        let some = |p: &str| Some(p.to_owned());
        assert_eq!(protocols(&m), [some("http1"), some("http1"), some("http1")]);
        // The annotation wins over the flag, `auto` included.
        for (value, expected) in [("h2c", some("h2c")), ("auto", None)] {
            let mut annotated = meta.clone();
            annotated.annotations = Some(BTreeMap::from([(
                ann::APP_PROTOCOL.to_owned(),
                value.to_owned(),
            )]));
            let (m, _) = injected(&annotated, &spec, &http1);
            assert_eq!(protocols(&m), vec![expected; 3], "{value}");
        }
        let mut bad = meta.clone();
        bad.annotations = Some(BTreeMap::from([(
            ann::APP_PROTOCOL.to_owned(),
            "http2".to_owned(),
        )]));
        let e = inject_pod(&bad, &spec, true, &InjectConfig::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`config.sluice.io/app-protocol: http2` is not valid: expected `auto`, `http1` or `h2c`"
        );
    }

    #[test]
    fn proxy_ports_are_refused() {
        let (meta, mut spec) = pod(WEB);
        spec.containers[0].ports.as_mut().unwrap()[0].container_port = 4191;
        assert_eq!(
            inject_pod(&meta, &spec, true, &InjectConfig::default()),
            Err(InjectError::PortTaken {
                port: 4191,
                container: "app".into()
            })
        );
        let (mut meta, spec) = pod(WEB);
        meta.annotations = Some(BTreeMap::from([(
            ann::INBOUND_PORTS.to_owned(),
            "4143".to_owned(),
        )]));
        assert_eq!(
            inject_pod(&meta, &spec, true, &InjectConfig::default()),
            Err(InjectError::InboundPortReserved { port: 4143 })
        );
        let config = InjectConfig {
            inbound_ports: Some((10000..10049).collect()),
            ..InjectConfig::default()
        };
        let (meta, _) = pod(WEB);
        assert_eq!(
            inject_pod(&meta, &spec, true, &config),
            Err(InjectError::TooManyInboundPorts { count: 49 })
        );
    }

    #[test]
    fn a_pod_without_inbound_ports_skips_no_inbound_port() {
        // `sluice init` refuses `--skip-inbound-ports` without `--inbound`
        // (cli/tests/kubelet.rs runs an injected Job's init container).
        let (meta, spec) = pod("
metadata: {name: report}
spec:
  containers:
  - name: report
    image: example/report:1
");
        let (_, s) = injected(&meta, &spec, &InjectConfig::default());
        let init = container(s.init_containers.as_ref().unwrap(), INIT_CONTAINER);
        assert_eq!(
            init.command.as_deref().unwrap(),
            [
                "sluice",
                "init",
                "--outbound-port",
                "4140",
                "--proxy-uid",
                "2102"
            ]
        );
    }

    #[test]
    fn the_cert_manager_volume_gives_its_files_the_proxy_group() {
        // csi-driver-spiffe writes tls.key 0440 in a folder 0550, root's;
        // without the attribute the proxy (uid and gid 2102) cannot read it
        // (cli/tests/kubelet.rs lays the volume out so).
        let (mut meta, spec) = pod(WEB);
        let (_, s) = injected(&meta, &spec, &InjectConfig::default());
        let identity = |s: &PodSpec| {
            let v = s.volumes.as_ref().unwrap();
            v.iter()
                .find(|v| v.name == IDENTITY_VOLUME)
                .and_then(|v| v.csi.clone())
                .unwrap()
        };
        assert_eq!(identity(&s).volume_attributes, None);
        meta.annotations = Some(BTreeMap::from([(
            ann::IDENTITY.to_owned(),
            "cert-manager".to_owned(),
        )]));
        let (_, s) = injected(&meta, &spec, &InjectConfig::default());
        let attributes = identity(&s).volume_attributes.unwrap();
        assert_eq!(
            attributes.get(CERT_MANAGER_FS_GROUP).map(String::as_str),
            Some("2102")
        );
        let proxy = container(s.init_containers.as_ref().unwrap(), PROXY_CONTAINER);
        let group = proxy.security_context.as_ref().unwrap().run_as_group;
        assert_eq!(group.map(|g| g.to_string()).as_deref(), Some("2102"));
    }

    #[test]
    fn classic_sidecar_and_cert_manager_and_oci() {
        let (mut meta, spec) = pod(WEB);
        meta.annotations = Some(BTreeMap::from([
            (ann::SIDECAR.to_owned(), "classic".to_owned()),
            (ann::IDENTITY.to_owned(), "cert-manager".to_owned()),
            (ann::TRUST_DOMAIN.to_owned(), "prod.example.com".to_owned()),
            (
                ann::POLICY_SOURCE.to_owned(),
                "oci://registry.example:5000/team/policy:prod".to_owned(),
            ),
            (
                ann::POLICY_KEYS_CONFIGMAP.to_owned(),
                "policy-keys".to_owned(),
            ),
            (
                ann::PROXY_IMAGE.to_owned(),
                "registry.example/sluice:dev".to_owned(),
            ),
        ]));
        let (m, s) = injected(&meta, &spec, &InjectConfig::default());
        assert_eq!(s.containers[0].name, PROXY_CONTAINER);
        assert_eq!(s.containers[0].restart_policy, None);
        assert_eq!(
            s.containers[0].image.as_deref(),
            Some("registry.example/sluice:dev")
        );
        assert_eq!(&s.containers[1..], &spec.containers[..]);
        let init = s.init_containers.as_ref().unwrap();
        assert_eq!(init.len(), 1);
        assert_eq!(init[0].name, INIT_CONTAINER);
        let v = s.volumes.as_ref().unwrap();
        assert_eq!(v[1].config_map.as_ref().unwrap().name, "policy-keys");
        assert_eq!(
            v[1].config_map.as_ref().unwrap().items.as_ref().unwrap()[0].key,
            "signer.pub"
        );
        assert_eq!(
            v[2].csi.as_ref().unwrap().driver,
            "spiffe.csi.cert-manager.io"
        );
        assert_eq!(v[3].name, CACHE_VOLUME);
        assert!(v[3].empty_dir.is_some());
        let mounts = s.containers[0].volume_mounts.as_ref().unwrap();
        assert_eq!(mounts[2].mount_path, "/var/run/secrets/spiffe.io");
        assert_eq!(
            (mounts[3].mount_path.as_str(), mounts[3].read_only),
            ("/var/cache/sluice", Some(false))
        );
        let toml: toml::Value = toml::from_str(annotation(&m, ann::PROXY_CONFIG)).unwrap();
        let expected: toml::Value = toml::from_str(
            r#"
            source = "oci://registry.example:5000/team/policy:prod"
            keys = ["/etc/sluice/policy/signer.pub"]
            cache-dir = "/var/cache/sluice"
            "#,
        )
        .unwrap();
        assert_eq!(toml["policy"], expected);
        let expected: toml::Value = toml::from_str(
            r#"
            cert = "/var/run/secrets/spiffe.io/tls.crt"
            key = "/var/run/secrets/spiffe.io/tls.key"
            trust-bundles = { "prod.example.com" = "/var/run/secrets/spiffe.io/ca.crt" }
            "#,
        )
        .unwrap();
        assert_eq!(toml["identity"], expected);
    }

    #[test]
    fn policy_annotations_are_checked() {
        let (meta, spec) = pod(WEB);
        let with = |pairs: &[(&str, &str)]| {
            let mut m = meta.clone();
            m.annotations = Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            );
            inject_pod(&m, &spec, true, &InjectConfig::default())
        };
        assert_eq!(
            with(&[(ann::POLICY_SOURCE, "oci://r/p:v1")]),
            Err(InjectError::MissingPolicyKeys {
                reference: "oci://r/p:v1".into()
            })
        );
        assert_eq!(
            with(&[
                (ann::POLICY_SOURCE, "oci://r/p:v1"),
                (ann::POLICY_CONFIGMAP, "p")
            ]),
            Err(InjectError::ConflictingPolicy)
        );
        assert!(matches!(
            with(&[(ann::POLICY_CONFIGMAP, "Bad_Name")]),
            Err(InjectError::Annotation(_))
        ));
        let Ok(Injection::Injected { spec: s, .. }) =
            with(&[(ann::POLICY_CONFIGMAP, "web-policy")])
        else {
            panic!()
        };
        assert_eq!(
            s.volumes.unwrap()[1].config_map.as_ref().unwrap().name,
            "web-policy"
        );
    }

    #[test]
    fn unknown_config_annotations_are_refused() {
        let (mut meta, spec) = pod(WEB);
        meta.annotations = Some(BTreeMap::from([
            (
                "config.sluice.io/policy-config-map".to_owned(),
                "web".to_owned(),
            ),
            (
                "config.linkerd.io/skip-outbound-ports".to_owned(),
                "25".to_owned(),
            ),
        ]));
        let e = inject_pod(&meta, &spec, true, &InjectConfig::default()).unwrap_err();
        assert_eq!(
            e,
            InjectError::UnknownAnnotation {
                key: "config.sluice.io/policy-config-map".into()
            }
        );
        assert!(
            e.to_string()
                .contains("`config.sluice.io/policy-configmap`"),
            "{e}"
        );
        // Other prefixes are not ours to judge.
        meta.annotations
            .as_mut()
            .unwrap()
            .remove("config.sluice.io/policy-config-map");
        assert!(matches!(
            inject_pod(&meta, &spec, true, &InjectConfig::default()),
            Ok(Injection::Injected { .. })
        ));
    }

    #[test]
    fn taken_names_are_refused() {
        let (meta, mut spec) = pod(WEB);
        spec.volumes = Some(vec![Volume {
            name: "sluice-cache".into(),
            ..Volume::default()
        }]);
        assert_eq!(
            inject_pod(&meta, &spec, true, &InjectConfig::default()),
            Err(InjectError::NameTaken {
                what: "volume",
                name: "sluice-cache".into()
            })
        );
    }

    #[test]
    fn uninject_reverses_inject() {
        let (meta, spec) = pod(WEB);
        let mut with_init = spec.clone();
        with_init.init_containers = Some(vec![Container {
            name: "migrate".into(),
            ..Container::default()
        }]);
        with_init.volumes = Some(vec![Volume {
            name: "data".into(),
            ..Volume::default()
        }]);
        let mut annotated = meta.clone();
        annotated.annotations = Some(BTreeMap::from([
            ("team".to_owned(), "a".to_owned()),
            (ann::APP_PROTOCOL.to_owned(), "h2c".to_owned()),
        ]));
        for sidecar in [Sidecar::Native, Sidecar::Classic] {
            for (identity, app_protocol) in [
                (Identity::SpiffeCsi, AppProtocol::Auto),
                (Identity::CertManager, AppProtocol::Http1),
            ] {
                let config = InjectConfig {
                    sidecar,
                    identity,
                    app_protocol,
                    ..InjectConfig::default()
                };
                for (m, s) in [(&meta, &spec), (&annotated, &with_init)] {
                    let (im, is) = injected(m, s, &config);
                    assert_eq!(
                        uninject_pod(&im, &is),
                        Uninjection::Uninjected {
                            meta: m.clone(),
                            spec: s.clone()
                        }
                    );
                }
            }
        }
        assert_eq!(uninject_pod(&meta, &spec), Uninjection::NotInjected);
        // Native: the proxy runs before the pod's own init containers.
        let (_, s) = injected(&meta, &with_init, &InjectConfig::default());
        let names: Vec<_> = s
            .init_containers
            .unwrap()
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, [INIT_CONTAINER, PROXY_CONTAINER, "migrate"]);
    }
}
