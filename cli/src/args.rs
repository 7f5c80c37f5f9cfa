//! Command-line arguments (clap derive).

use crate::cmd::init::{InboundRedirect, PortRange};
use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// `sluice`: check, compile, inspect and evaluate Sluice policies.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about, propagate_version = true)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands of spec section 9.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Report a policy's diagnostics; exit 1 when there are errors.
    Lint(LintArgs),
    /// Compile a policy into a bundle file.
    Compile(CompileArgs),
    /// Show what a bundle holds and its content hash.
    Inspect(InspectArgs),
    /// Decide requests given as JSON; print one decision JSON line each.
    Eval(EvalArgs),
    /// Rewrite policy files in the canonical layout; `--check` lists the files that would change.
    Fmt(FmtArgs),
    /// Run conformance files; end with `N passed, N failed`.
    Test(TestArgs),
    /// Report exactly how NEW decides requests differently from OLD; exit 1 when it does.
    Diff(DiffArgs),
    /// Make development SPIFFE identities: a CA, and SVIDs it signs.
    Identity(IdentityArgs),
    /// Run the proxy: enforce a policy on real traffic (see the README).
    Proxy(ProxyArgs),
    /// Serve Envoy's ext_authz gRPC API: decide Envoy's and Istio's checks (see docs/ext-authz.md).
    Authz(ProxyArgs),
    /// Write the iptables rules that send the workload's TCP through the proxy.
    Init(InitArgs),
    /// Make signing keys for bundle artifacts (ECDSA P-256).
    Keys(KeysArgs),
    /// Publish a policy or bundle as an OCI artifact; print its manifest digest.
    Push(PushArgs),
    /// Fetch an OCI artifact, check its signature and digests, write its bundle.
    Pull(PullArgs),
    /// Sign an OCI artifact (cosign's format) and push the signature beside it.
    Sign(SignArgs),
    /// Add the Sluice proxy to the pod templates of Kubernetes YAML (see docs/kubernetes.md).
    Inject(Box<InjectArgs>),
    /// Remove what `sluice inject` added from Kubernetes YAML.
    Uninject(UninjectArgs),
}

/// How `lint` prints diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// rustc-like text with the source line, on standard error.
    #[default]
    Human,
    /// A JSON array of `{severity, code, message, file, line, column}`, on standard output.
    Json,
}

/// Arguments of `sluice lint`.
#[derive(Debug, Args)]
pub struct LintArgs {
    /// A `.sluice` file or a directory of them.
    pub path: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Largest automaton, in bytes (default 16 MiB).
    #[arg(long, value_name = "BYTES")]
    pub dfa_size_limit: Option<usize>,
}

/// Arguments of `sluice compile`.
#[derive(Debug, Args)]
pub struct CompileArgs {
    /// A `.sluice` file or a directory of them.
    pub path: PathBuf,
    /// Where to write the bundle.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
    /// Largest automaton, in bytes (default 16 MiB).
    #[arg(long, value_name = "BYTES")]
    pub dfa_size_limit: Option<usize>,
}

/// Arguments of `sluice inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A bundle file written by `sluice compile`.
    pub file: PathBuf,
}

/// Arguments of `sluice fmt`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    sluice fmt policy/                 rewrite every .sluice file under policy/\n  \
    sluice fmt web.sluice mesh.sluice  rewrite two files\n  \
    sluice fmt --check policy/         change nothing; list the files that would change\n\
    Exit status: 0 nothing to change (or all rewritten), 1 --check found files to change, \
    2 a syntax error (the file is left as it is) or a file that cannot be read or written.")]
pub struct FmtArgs {
    /// `.sluice` files, or directories searched recursively for them.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Write nothing; list the files that would change and exit 1 if there are any.
    #[arg(long)]
    pub check: bool,
}

/// Arguments of `sluice diff`.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 no differences, 1 differences, 2 an error \
    (a path that cannot be read, a policy that does not compile, a bad bundle, \
    or policies too large to diff exactly)."
)]
pub struct DiffArgs {
    /// The old policy (file or directory) or bundle file.
    pub old: PathBuf,
    /// The new policy (file or directory) or bundle file.
    pub new: PathBuf,
    /// One line per difference: words, or `{"old","new","request"}` JSON.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

/// Arguments of `sluice eval`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["policy", "bundle"])))]
pub struct EvalArgs {
    /// Compile this policy (file or directory) in memory.
    #[arg(long, value_name = "PATH")]
    pub policy: Option<PathBuf>,
    /// Load this bundle file.
    #[arg(long, value_name = "FILE")]
    pub bundle: Option<PathBuf>,
    /// A request as JSON (repeatable); without it, JSON lines are read from standard input.
    #[arg(long, value_name = "JSON")]
    pub request: Vec<String>,
    /// Explain each decision on standard error.
    #[arg(long)]
    pub explain: bool,
    /// Largest automaton, in bytes, when compiling `--policy` (default 16 MiB).
    #[arg(long, value_name = "BYTES", conflicts_with = "bundle")]
    pub dfa_size_limit: Option<usize>,
}

/// Arguments of `sluice test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Conformance `.toml` files, or directories searched recursively for them.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Also list each policy's routes, rules and egress rules that no case took.
    #[arg(long)]
    pub coverage: bool,
    /// Format of the coverage report: text, or one JSON object per line.
    #[arg(long, value_enum, default_value_t = Format::Human, requires = "coverage")]
    pub format: Format,
}

/// Arguments of `sluice identity`.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  \
    sluice identity ca --trust-domain example.org --out certs\n  \
    sluice identity issue --ca certs --id spiffe://example.org/ns/default/sa/web --out certs/web\n\
    Then `certs/ca.pem` is the trust bundle of `example.org`, `certs/web.pem` and `certs/web.key` the SVID.")]
pub struct IdentityArgs {
    /// What to make.
    #[command(subcommand)]
    pub command: IdentityCommand,
}

/// The subcommands of `sluice identity`.
#[derive(Debug, Subcommand)]
pub enum IdentityCommand {
    /// Create a self-signed CA for a trust domain: `DIR/ca.pem` (the trust bundle) and `DIR/ca.key`.
    Ca(IdentityCaArgs),
    /// Issue an X.509-SVID signed by a CA from `sluice identity ca`: `PREFIX.pem` and `PREFIX.key`.
    Issue(IdentityIssueArgs),
}

/// Arguments of `sluice identity ca`.
#[derive(Debug, Args)]
pub struct IdentityCaArgs {
    /// The trust domain, e.g. `example.org`; the CA carries the URI SAN `spiffe://<NAME>`.
    #[arg(long, value_name = "NAME", value_parser = trust_domain)]
    pub trust_domain: String,
    /// The directory to write `ca.pem` and `ca.key` into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Validity in days.
    #[arg(long, value_name = "N", default_value_t = 365,
          value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub days: u32,
    /// Replace an existing `DIR/ca.key`.
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `sluice identity issue`.
#[derive(Debug, Args)]
pub struct IdentityIssueArgs {
    /// The directory of `ca.pem` and `ca.key`, written by `sluice identity ca`.
    #[arg(long, value_name = "DIR")]
    pub ca: PathBuf,
    /// The SVID's SPIFFE ID, in the CA's trust domain, with a path.
    #[arg(long, value_name = "SPIFFE_ID", value_parser = workload_id)]
    pub id: String,
    /// Writes `PREFIX.pem` (the certificate) and `PREFIX.key` (its PKCS#8 key).
    #[arg(long, value_name = "PREFIX")]
    pub out: PathBuf,
    /// Validity in days, capped at the CA's expiry.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=365))]
    pub days: u32,
}

/// Arguments of `sluice push`.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  \
    sluice push policy.sluice oci://registry.example:5000/team/policy:v1\n  \
    sluice push policy.sluice oci:/srv/www/policies/payments:v1\n\
    A policy is compiled and is its own source layer; a compiled bundle takes its source from `--source`, or has an empty one. `oci:DIR:TAG` writes an OCI image layout into the local folder DIR (created when missing), which any static HTTP server can then serve to `sluice pull https://HOST/PATH:TAG`.")]
pub struct PushArgs {
    /// A `.sluice` policy file, or a bundle written by `sluice compile`.
    pub input: PathBuf,
    /// Where to: `oci://HOST[:PORT]/REPO:TAG` (a registry) or `oci:DIR:TAG` (an image layout in a local folder).
    #[arg(value_name = "REF")]
    pub reference: String,
    /// The policy source to push beside a compiled bundle.
    #[arg(long, value_name = "FILE")]
    pub source: Option<PathBuf>,
    /// Speak plain HTTP to the registry (no TLS).
    #[arg(long)]
    pub plain_http: bool,
    /// Largest automaton, in bytes, when compiling a policy (default 16 MiB).
    #[arg(long, value_name = "BYTES")]
    pub dfa_size_limit: Option<usize>,
}

/// Arguments of `sluice pull`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("trust").required(true).args(["keys", "allow_unsigned"])))]
#[command(after_help = "Examples:\n  \
    sluice pull oci://registry.example:5000/team/policy:v1 --key signer.pub -o policy.bundle\n  \
    sluice pull https://cdn.example/policies/payments:v1 --key signer.pub -o policy.bundle\n\
    An `https://` or `http://` reference names an OCI image layout folder on a static server (written by `sluice push ... oci:DIR:TAG`); its signatures are checked by key and digest only. `http://` needs `--plain-http`.")]
pub struct PullArgs {
    /// What to fetch: `oci://HOST[:PORT]/REPO(:TAG|@sha256:HEX)` or an image layout `https://HOST[:PORT]/PATH(:TAG|@sha256:HEX)`.
    #[arg(value_name = "REF")]
    pub reference: String,
    /// Where to write the bundle.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
    /// A signer's public key (PEM); repeatable, any one must have signed.
    #[arg(long = "key", value_name = "PUB")]
    pub keys: Vec<PathBuf>,
    /// Accept an artifact without checking a signature.
    #[arg(long, conflicts_with = "keys")]
    pub allow_unsigned: bool,
    /// Speak plain HTTP to the registry, or accept an `http://` layout URL (no TLS).
    #[arg(long)]
    pub plain_http: bool,
    /// Refuse an artifact larger than this, in bytes (default 64 MiB).
    #[arg(long, value_name = "BYTES")]
    pub max_bundle_bytes: Option<u64>,
}

/// Arguments of `sluice sign`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    sluice sign oci://registry.example:5000/team/policy:v1 --key signer.key\n  \
    sluice sign oci:/srv/www/policies/payments:v1 --key signer.key\n\
    The signature goes under the tag `sha256-<hex>.sig` beside the artifact, after the signatures already there. Its payload names the artifact as `REPO:TAG` (a layout: the folder's name and the tag), or as `--identity`.")]
pub struct SignArgs {
    /// The artifact to sign: `oci://HOST[:PORT]/REPO:TAG`, `...@sha256:HEX`, or `oci:DIR:TAG` (an image layout in a local folder).
    #[arg(value_name = "REF")]
    pub reference: String,
    /// The private key (PEM: PKCS#8 or SEC1 P-256, or cosign's encrypted key, opened with the password in `COSIGN_PASSWORD`).
    #[arg(long, value_name = "PRIVATE")]
    pub key: PathBuf,
    /// The `docker-reference` the signature names, `HOST[:PORT]/REPO[:TAG]`, instead of REF's (for a layout that will be copied into that registry repository, where pulls check it).
    #[arg(long, value_name = "REF")]
    pub identity: Option<String>,
    /// Speak plain HTTP to the registry (no TLS).
    #[arg(long)]
    pub plain_http: bool,
}

/// Arguments of `sluice inject`.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  \
    sluice inject deployment.yaml | kubectl apply -f -\n  \
    kubectl get deploy web -o yaml | sluice inject --policy-configmap web-policy - | kubectl apply -f -\n  \
    sluice inject --serve --listen 0.0.0.0:8443 --cert tls.crt --key tls.key\n\
    Reads several YAML documents and `kind: List`; every Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job and CronJob gets the proxy, unless annotated `sluice.io/inject: disabled` or already injected; other objects pass through. A pod's `config.sluice.io/*` annotations win over these flags. Comments are not kept. When a workload cannot be injected (`hostNetwork`), nothing is written and the exit status is 1.")]
pub struct InjectArgs {
    /// Kubernetes YAML to read; `-` or nothing for standard input.
    #[arg(value_name = "FILE", conflicts_with = "serve")]
    pub file: Option<PathBuf>,
    /// Serve the admission webhook (AdmissionReview v1 over HTTPS: POST /mutate, POST /mutate/namespace-enabled, GET /healthz) instead of reading YAML; until SIGTERM or SIGINT.
    #[arg(long, requires_all = ["cert", "key"])]
    pub serve: bool,
    /// With `--serve`: the address to listen on.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "0.0.0.0:8443",
        requires = "serve"
    )]
    pub listen: std::net::SocketAddr,
    /// With `--serve`: the serving certificate chain, PEM (read again when it changes).
    #[arg(long, value_name = "FILE", requires = "serve")]
    pub cert: Option<PathBuf>,
    /// With `--serve`: the certificate's private key, PEM.
    #[arg(long, value_name = "FILE", requires = "serve")]
    pub key: Option<PathBuf>,
    /// Settings for pods whose annotations do not say.
    #[command(flatten)]
    pub settings: InjectSettings,
}

/// The `sluice inject` flags that mirror the `config.sluice.io/*` annotations.
#[derive(Debug, Args)]
pub struct InjectSettings {
    /// The proxy (and init) container image [default: ghcr.io/sluice-mesh/sluice:VERSION].
    #[arg(long, value_name = "IMAGE", value_parser = inject_image)]
    pub proxy_image: Option<String>,
    /// The proxy as a native sidecar (an init container that keeps running, Kubernetes 1.29+) or a classic container.
    #[arg(long, value_enum, default_value_t = SidecarArg::Native)]
    pub sidecar: SidecarArg,
    /// Where the proxy's SVID comes from: the SPIFFE CSI driver (SPIRE) or cert-manager's csi-driver-spiffe.
    #[arg(long, value_enum, default_value_t = IdentityArg::SpiffeCsi)]
    pub identity: IdentityArg,
    /// The trust domain of cert-manager's trust bundle.
    #[arg(long, value_name = "NAME", default_value = "cluster.local", value_parser = inject_trust_domain)]
    pub trust_domain: String,
    /// The ConfigMap whose key `policy.sluice` is the policy [default: sluice-policy].
    #[arg(long, value_name = "NAME", value_parser = inject_object_name, conflicts_with = "policy_source")]
    pub policy_configmap: Option<String>,
    /// A signed policy artifact, `oci://...` or `https://...`, pulled by the proxy.
    #[arg(long, value_name = "REF", value_parser = inject_policy_source, requires = "policy_keys_configmap")]
    pub policy_source: Option<String>,
    /// The ConfigMap whose key `signer.pub` verifies `--policy-source`.
    #[arg(long, value_name = "NAME", value_parser = inject_object_name, requires = "policy_source")]
    pub policy_keys_configmap: Option<String>,
    /// Application ports the proxy stands in front of, e.g. `8080,9090` [default: every TCP containerPort].
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = port)]
    pub inbound_ports: Option<Vec<u16>>,
    /// Incoming ports never redirected, e.g. `22,8000-8099` (the admin port 4191 always is).
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = inject_port_range)]
    pub skip_inbound_ports: Vec<sluice_kube::annotations::PortRange>,
    /// Outgoing ports never redirected, e.g. `25,3306`.
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = inject_port_range)]
    pub skip_outbound_ports: Vec<sluice_kube::annotations::PortRange>,
    /// What the proxy forwards HTTP to the application as: the client's own protocol, HTTP/1.1 (for HTTP/1.1-only applications behind HTTP/2 clients; no gRPC), or h2c.
    #[arg(long, value_enum, default_value_t = AppProtocolArg::Auto)]
    pub app_protocol: AppProtocolArg,
}

/// `--sidecar`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SidecarArg {
    /// An init container with `restartPolicy: Always`.
    Native,
    /// The pod's first container.
    Classic,
}

/// `--identity`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum IdentityArg {
    /// The SPIFFE CSI driver `csi.spiffe.io` (the SPIRE agent's Workload API).
    SpiffeCsi,
    /// cert-manager's csi-driver-spiffe `spiffe.csi.cert-manager.io` (SVID files).
    CertManager,
}

/// `--app-protocol`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AppProtocolArg {
    /// HTTP/1.1 clients over HTTP/1.1, HTTP/2 clients over h2c.
    Auto,
    /// HTTP/1.1 for every client (gRPC is refused).
    Http1,
    /// HTTP/2 with prior knowledge for every client.
    H2c,
}

/// Arguments of `sluice uninject`.
#[derive(Debug, Args)]
pub struct UninjectArgs {
    /// Kubernetes YAML to read; `-` or nothing for standard input.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
}

fn inject_image(s: &str) -> Result<String, String> {
    sluice_kube::annotations::parse_image("--proxy-image", s).map_err(|e| e.expected.to_owned())
}

fn inject_trust_domain(s: &str) -> Result<String, String> {
    sluice_kube::annotations::parse_trust_domain("--trust-domain", s)
        .map_err(|e| e.expected.to_owned())
}

fn inject_object_name(s: &str) -> Result<String, String> {
    sluice_kube::annotations::parse_object_name("NAME", s).map_err(|e| e.expected.to_owned())
}

fn inject_policy_source(s: &str) -> Result<String, String> {
    sluice_kube::annotations::parse_policy_source("REF", s).map_err(|e| e.expected.to_owned())
}

fn inject_port_range(s: &str) -> Result<sluice_kube::annotations::PortRange, String> {
    match sluice_kube::annotations::parse_port_ranges("LIST", s) {
        Ok(list) if list.len() == 1 => Ok(list[0]),
        Ok(_) => Err("an empty port in the list".to_owned()),
        Err(e) => Err(e.expected.to_owned()),
    }
}

fn port(s: &str) -> Result<u16, String> {
    crate::cmd::init::port(s)
}

fn port_range(s: &str) -> Result<PortRange, String> {
    PortRange::parse(s)
}

fn inbound_redirect(s: &str) -> Result<InboundRedirect, String> {
    InboundRedirect::parse(s)
}

fn trust_domain(s: &str) -> Result<String, String> {
    crate::cmd::identity::check_trust_domain(s).map(str::to_owned)
}

fn workload_id(s: &str) -> Result<String, String> {
    crate::cmd::identity::check_workload_id(s).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("sluice").chain(args.iter().copied()))
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn lint_format() {
        let Command::Lint(a) = parse(&["lint", "p"]).unwrap().command else {
            panic!()
        };
        assert_eq!(a.format, Format::Human);
        let Command::Lint(a) = parse(&["lint", "p", "--format", "json"]).unwrap().command else {
            panic!()
        };
        assert_eq!(a.format, Format::Json);
        assert!(parse(&["lint", "p", "--format", "xml"]).is_err());
        assert!(parse(&["lint"]).is_err());
    }

    #[test]
    fn compile_needs_output() {
        assert!(parse(&["compile", "p"]).is_err());
        let Command::Compile(a) = parse(&["compile", "p", "-o", "b", "--dfa-size-limit", "1000"])
            .unwrap()
            .command
        else {
            panic!()
        };
        assert_eq!(a.output, PathBuf::from("b"));
        assert_eq!(a.dfa_size_limit, Some(1000));
        assert!(parse(&["compile", "p", "-o", "b", "--dfa-size-limit", "x"]).is_err());
    }

    #[test]
    fn eval_needs_exactly_one_source() {
        assert!(parse(&["eval"]).is_err());
        assert!(parse(&["eval", "--policy", "p", "--bundle", "b"]).is_err());
        assert!(parse(&["eval", "--bundle", "b", "--dfa-size-limit", "10"]).is_err());
        let Command::Eval(a) = parse(&[
            "eval",
            "--bundle",
            "b",
            "--request",
            "{}",
            "--request",
            "[]",
            "--explain",
        ])
        .unwrap()
        .command
        else {
            panic!()
        };
        assert_eq!(a.request, ["{}", "[]"]);
        assert!(a.explain);
        assert!(a.policy.is_none());
    }

    #[test]
    fn init_values() {
        let Command::Init(a) = parse(&[
            "init",
            "--outbound-port",
            "4140",
            "--proxy-uid",
            "2102",
            "--inbound",
            "8080=4143",
            "--inbound",
            "9090=4144",
            "--skip-outbound-ports",
            "9990,8000-8099",
            "--skip-outbound-ports",
            "25",
            "--print",
        ])
        .unwrap()
        .command
        else {
            panic!()
        };
        assert_eq!(a.outbound_port, Some(4140));
        assert_eq!(a.proxy_uid, Some(2102));
        assert_eq!(a.inbound.len(), 2);
        assert_eq!(a.skip_outbound_ports.len(), 3);
        assert!(a.print && !a.legacy && !a.ipv6);
        assert!(parse(&["init", "--outbound-port", "0"]).is_err());
        assert!(parse(&["init", "--inbound", "8080"]).is_err());
        assert!(parse(&["init", "--skip-outbound-ports", "9990,"]).is_err());
        assert!(parse(&["init", "--skip-outbound-ports", ""]).is_err());
        assert!(parse(&["init", "--proxy-uid", "-1"]).is_err());
    }

    #[test]
    fn test_needs_a_path() {
        assert!(parse(&["test"]).is_err());
        let Command::Test(a) = parse(&["test", "a", "b"]).unwrap().command else {
            panic!()
        };
        assert_eq!(a.paths.len(), 2);
        assert!(!a.coverage);
        let Command::Test(a) = parse(&["test", "a", "--coverage", "--format", "json"])
            .unwrap()
            .command
        else {
            panic!()
        };
        assert!(a.coverage);
        assert_eq!(a.format, Format::Json);
        assert!(parse(&["test", "a", "--format", "json"]).is_err());
    }
}

/// Arguments of `sluice proxy` and `sluice authz`.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// The proxy's TOML configuration (`sluice authz`: with an `[authz]` table).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Log filter, e.g. `info` or `sluice_proxy=debug` (default: `SLUICE_LOG` or `info`).
    #[arg(long, value_name = "FILTER")]
    pub log: Option<String>,
}

/// Arguments of `sluice init`.
#[derive(Debug, Args)]
#[command(
    after_help = "Outgoing TCP from every user but `--proxy-uid` goes to `--outbound-port`, \
    except to loopback addresses (127.0.0.0/8, ::1) and the skipped ports; \
    each `--inbound PORT=PROXYPORT` sends incoming TCP for PORT to PROXYPORT. \
    Re-running replaces the rules (chains SLUICE_OUTPUT and SLUICE_PREROUTING of the nat table).\n\n\
    Example:\n  \
    sluice init --outbound-port 4140 --proxy-uid 2102 --inbound 8080=4143 --skip-outbound-ports 9990 --print"
)]
pub struct InitArgs {
    /// The proxy's transparent outbound listener port, e.g. `4140`.
    #[arg(long, value_name = "PORT", value_parser = port)]
    pub outbound_port: Option<u16>,
    /// Send incoming TCP for the application's PORT to the proxy's inbound listener PROXYPORT (repeatable).
    #[arg(long, value_name = "PORT=PROXYPORT", value_parser = inbound_redirect)]
    pub inbound: Vec<InboundRedirect>,
    /// The proxy's user id: its own connections are never redirected.
    #[arg(long, value_name = "UID")]
    pub proxy_uid: Option<u32>,
    /// Outgoing destination ports never redirected, e.g. `9990,8000-8099` (repeatable).
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = port_range)]
    pub skip_outbound_ports: Vec<PortRange>,
    /// Incoming ports never redirected, e.g. the admin port (repeatable).
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = port_range)]
    pub skip_inbound_ports: Vec<PortRange>,
    /// Also write the rules for IPv6 with `ip6tables-restore`.
    #[arg(long)]
    pub ipv6: bool,
    /// Use `iptables-legacy-restore` instead of `iptables-restore`.
    #[arg(long)]
    pub legacy: bool,
    /// Print the `iptables-restore` input instead of applying it.
    #[arg(long)]
    pub print: bool,
}

/// Arguments of `sluice keys`.
#[derive(Debug, Args)]
pub struct KeysArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: KeysCommand,
}

/// The subcommands of `sluice keys`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate an ECDSA P-256 key pair for `sluice sign`: `PREFIX.key`
    /// (PKCS#8 PEM, mode 0600) and `PREFIX.pub` (public key PEM, for
    /// verifiers). Existing files are not overwritten.
    Generate(KeysGenerateArgs),
}

/// Arguments of `sluice keys generate`.
#[derive(Debug, Args)]
pub struct KeysGenerateArgs {
    /// Path prefix of the two files written, e.g. `keys/release`.
    #[arg(long, value_name = "PREFIX")]
    pub out: PathBuf,
    /// Write `PREFIX.key` as cosign's encrypted key (`ENCRYPTED SIGSTORE PRIVATE KEY`), with the password in `COSIGN_PASSWORD` (which must be set; empty is allowed, as in cosign).
    #[arg(long)]
    pub encrypt: bool,
}
