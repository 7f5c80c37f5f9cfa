//! Injected pods, run by playing the kubelet (issue 12, point 5).
//!
//! `sluice inject` adds the proxy to a fixture of `data/kubelet/`; the test
//! parses its output with the Kubernetes API types and runs the pod
//! template as a kubelet would, on this machine:
//!
//! - the pod is a network namespace made for the test, joined to the test's
//!   own namespace (the node) by a veth pair on a private /30;
//! - its volumes are folders: the ConfigMap (`policy.sluice`, written
//!   here) and the downward API file (`proxy.toml`, the annotation
//!   `sluice.io/proxy-config`) laid out as the kubelet's atomic writer does
//!   (`..data` symlinks); the cert-manager CSI volume as csi-driver-spiffe
//!   writes it (`tls.crt`, `tls.key`, `ca.crt` from `sluice identity
//!   ca/issue`, folder 0550 and files 0440, root's, their group the
//!   `fs-group` volume attribute); `emptyDir`s;
//! - each container runs in the pod's network namespace and a mount
//!   namespace of its own, where its `volumeMounts` are bind-mounted at
//!   their `mountPath` (read-only when asked), the `sluice` binary where the
//!   repository's `Dockerfile` puts it (the command is found through the
//!   image's `PATH`), the root file system read-only when the security
//!   context asks, as the user, group, capabilities and `no_new_privs` of
//!   its security context (`setpriv`; the image's `USER` when none is
//!   given). Mount points missing on this machine are made in an overlay of
//!   their parent inside the container's mount namespace, so nothing is
//!   written outside the test's folder;
//! - the init containers run in order: `sluice-init`'s exact command to
//!   completion (exit 0), the native sidecar (`restartPolicy: Always`)
//!   started and its readiness probe polled from the node at the pod's IP;
//!   then the containers: a proxy container (classic sidecar) by its exact
//!   command, the application by an echo server standing in for its image,
//!   on its `containerPort`, its readiness probe polled from the node.
//!
//! From the node: an allowed request reaches the application through the
//! proxy (the application sees it come from loopback; the proxy counts it),
//! in plaintext and over mTLS with a client SVID of the same trust domain
//! (the application gets the client's SPIFFE ID), a denied one is answered
//! by the proxy; from the application, an allowed destination on the node
//! is reached through the proxy and a blocked one is refused by it, though
//! both answered before `sluice init`. When the ConfigMap changes (the
//! kubelet's `..data` swap), the proxy serves the new policy.
//!
//! Needs root, `ip`, `iptables`, `unshare`, `setpriv`, `mount` and `curl`;
//! without them it prints why and passes, except under `CI=true`, where it
//! fails.
//! The tests re-execute this binary for what runs inside the pod, the role
//! chosen by `SLUICE_KUBELET_ROLE`.

#[path = "support/netns.rs"]
mod netns;

use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec, Probe, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use netns::{log_lines, set_mode, Link, Netns, Procs, TempDir};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ROLE: &str = "SLUICE_KUBELET_ROLE";
const ARGS: &str = "SLUICE_KUBELET_ARGS";
/// The test the re-executed binary runs (any test here dispatches roles).
const TEST_NAME: &str = "kubelet_runs_injected_deployment";
const WHAT: &str = "the kubelet tests (injected pods run in network namespaces)";

/// The image's `PATH` (Debian's default, as in `debian:bookworm-slim`).
const IMAGE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The fixtures' namespace and service account.
const NAMESPACE: &str = "shop";
const SERVICE_ACCOUNT: &str = "web";
/// The ConfigMap the fixtures name, and its key.
const POLICY_CONFIGMAP: &str = "web-policy";
const POLICY_KEY: &str = "policy.sluice";
/// The application's port in the Deployment fixture.
const APP_PORT: u16 = 8080;
/// A meshed client of the application, in the same trust domain.
const CLIENT_ID: &str = "spiffe://cluster.local/ns/shop/sa/client";
/// Servers on the node that the application calls: allowed, and blocked.
const UPSTREAM_PORT: u16 = 18080;
const BLOCKED_PORT: u16 = 18081;

/// The policy in the ConfigMap: `GET /allowed` from anyone, the kubelet's
/// probe of `/healthz` from the node, nothing else inbound; outbound, the
/// node's upstream port only.
fn policy(node: Ipv4Addr) -> String {
    policy_allowing(node, "/allowed")
}

/// The policy, allowing `GET PATH` from anyone instead of `/allowed`.
fn policy_allowing(node: Ipv4Addr, path: &str) -> String {
    format!(
        r#"
server web {{
  port {APP_PORT}
  protocol http
  route allowed {{ method GET  path "{path}" }}
  route healthz {{ method GET  path "/healthz" }}
}}

allow anyone  {{ to web.allowed  from any }}
allow kubelet {{ to web.healthz  from network {node} }}

egress {{
  default deny
  allow upstream {{ network {node}  port {UPSTREAM_PORT} }}
  deny  blocked  {{ network {node}  port {BLOCKED_PORT} }}
}}
"#
    )
}

/// Runs a role when this process is one, and says whether it was.
fn role() -> bool {
    match std::env::var(ROLE).as_deref() {
        Ok("container") => roles::container(),
        Ok("app") => roles::app(),
        Ok("client") => roles::client(),
        Ok(other) => panic!("unknown {ROLE} `{other}`"),
        Err(_) => return false,
    }
    true
}

/// Whether the tests can run here; skips (fails under CI) when not.
fn can_run() -> bool {
    let ready = netns::require_root().and_then(|()| {
        netns::require_tools(&[
            "ip",
            "iptables",
            "iptables-restore",
            "unshare",
            "setpriv",
            "mount",
            "curl",
        ])
    });
    if let Err(reason) = ready {
        sluice_testkit::skip(WHAT, &reason);
        return false;
    }
    true
}

#[test]
fn kubelet_runs_injected_deployment() {
    if role() || !can_run() {
        return;
    }
    let Some(pod) = Pod::create("web-deployment.yaml", 0) else {
        return;
    };
    pod.check_direct_egress();
    pod.run();
    check_inbound(&pod);
    pod.check_egress();

    // The ConfigMap changes: the kubelet swaps the volume's `..data`, the
    // proxy notices and serves the new policy.
    let volume = pod
        .spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.config_map.as_ref().map(|c| c.name.as_str()) == Some(POLICY_CONFIGMAP))
        .expect("no volume of the policy ConfigMap");
    let files = [(
        POLICY_KEY.to_owned(),
        policy_allowing(pod.node_ip, "/later"),
    )];
    atomic_write(&pod.volumes[&volume.name], &files, 0o644);
    let app_addr = SocketAddr::from((pod.pod_ip, APP_PORT));
    let started = Instant::now();
    loop {
        let seen = http_get(app_addr, "/later");
        if seen.starts_with("200 app GET /later ") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{}",
            pod.report(&format!("the changed ConfigMap is not served: {seen}"))
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let seen = http_get(app_addr, "/allowed");
    assert!(
        seen.starts_with("403 ") || seen.starts_with("404 "),
        "{}",
        pod.report(&format!("/allowed after the change: {seen}"))
    );
}

#[test]
fn kubelet_runs_injected_classic_sidecar() {
    if role() || !can_run() {
        return;
    }
    let Some(pod) = Pod::create("web-classic.yaml", 2) else {
        return;
    };
    let proxy = pod.proxy();
    assert!(
        pod.spec.containers.first() == Some(proxy),
        "a classic sidecar is the first container:\n{}",
        pod.manifest
    );
    pod.check_direct_egress();
    pod.run();
    check_inbound(&pod);
    pod.check_egress();
}

/// From the node to the pod's IP and the application's port: allowed
/// requests reach the application through the proxy, in plaintext and over
/// mTLS; denied ones never reach it.
fn check_inbound(pod: &Pod) {
    let app_addr = SocketAddr::from((pod.pod_ip, APP_PORT));
    let seen = http_get(app_addr, "/allowed");
    assert!(
        seen.starts_with("200 app GET /allowed from 127.0.0.1:"),
        "{}",
        pod.report(&format!("allowed request: {seen}"))
    );
    let counted = pod.metrics();
    let allowed = r#"sluice_inbound_requests_total{server="web",route="allowed",rule="anyone",decision="allow"} 1"#;
    assert!(
        counted.contains(allowed),
        "{}",
        pod.report(&format!(
            "the proxy did not count the allowed request:\n{counted}"
        ))
    );
    assert!(
        seen.ends_with(" identity="),
        "{}",
        pod.report(&format!("a plaintext request with an identity: {seen}"))
    );
    // mTLS, as a meshed client: the proxy presents the SVID from the CSI
    // volume, verifies the client's against the volume's trust bundle and
    // passes the identity on (`-k`: the SVID names a SPIFFE ID, not the IP).
    // The application speaks HTTP/1.1 only. Annotated
    // `config.sluice.io/app-protocol: http1`, the proxy forwards HTTP/1.1
    // whatever the client speaks, so curl keeps its default, HTTP/2 (the
    // proxy offers h2 in ALPN). Otherwise (`auto`) the proxy forwards in the
    // client's protocol: an HTTP/2 client gets 502, an HTTP/1.1 one the
    // application's answer.
    let http1 = pod
        .meta
        .annotations
        .as_ref()
        .and_then(|a| a.get("config.sluice.io/app-protocol"))
        .is_some_and(|v| v == "http1");
    let (version, code, seen) = mtls_get(pod, app_addr, if http1 { &[] } else { &["--http1.1"] });
    assert!(
        version == if http1 { "2" } else { "1.1" }
            && code == "200"
            && seen.starts_with("app GET /allowed from 127.0.0.1:")
            && seen.ends_with(&format!(" identity={CLIENT_ID}")),
        "{}",
        pod.report(&format!("mTLS request (HTTP/{version} {code}): {seen}"))
    );
    if !http1 {
        let (version, code, seen) = mtls_get(pod, app_addr, &["--http2"]);
        assert!(
            version == "2" && code == "502",
            "{}",
            pod.report(&format!(
                "an HTTP/2 client of an HTTP/1.1-only application with `auto` (HTTP/{version} {code}): {seen}"
            ))
        );
    }
    for path in ["/secret", "/allowed/../secret"] {
        let seen = http_get(app_addr, path);
        assert!(
            seen.starts_with("403 ") || seen.starts_with("404 "),
            "{}",
            pod.report(&format!("denied request {path}: {seen}"))
        );
    }
    let app_log = log_lines(&pod.app_log);
    assert!(
        !app_log.iter().any(|l| l.contains("secret")),
        "{}",
        pod.report("a denied request reached the application")
    );
    assert!(
        app_log
            .iter()
            .all(|l| l == "ready" || l.contains(" from 127.0.0.1:")),
        "{}",
        pod.report("the application was reached around the proxy")
    );
}

/// `GET /allowed` over mTLS with the client SVID, by curl with `flags`:
/// (the HTTP version, the status code, the body).
fn mtls_get(pod: &Pod, app_addr: SocketAddr, flags: &[&str]) -> (String, String, String) {
    let ca = pod.dir.0.join("ca");
    let out = Command::new("curl")
        .args(["-sS", "-k", "--max-time", "10", "--cert"])
        .arg(ca.join("client.pem"))
        .arg("--key")
        .arg(ca.join("client.key"))
        .args(flags)
        .args(["--write-out", "\n%{http_version} %{http_code}"])
        .arg(format!("https://{app_addr}/allowed"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (body, status) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    let (version, code) = status.split_once(' ').unwrap_or((status, ""));
    assert!(
        out.status.success(),
        "{}",
        pod.report(&format!(
            "curl {flags:?} ({}): {stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    );
    (version.to_owned(), code.to_owned(), body.to_owned())
}

#[test]
fn kubelet_runs_injected_job_without_ports() {
    if role() || !can_run() {
        return;
    }
    let Some(pod) = Pod::create("report-job.yaml", 1) else {
        return;
    };
    pod.check_direct_egress();
    pod.run();
    pod.check_egress();
}

/// Runs a command in the test's own namespace; fails the test when it fails.
fn run(argv: &[&str]) {
    let out = Command::new(argv[0]).args(&argv[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether a container runs the `sluice` binary (the proxy's image).
fn is_sluice(c: &Container) -> bool {
    c.command
        .as_ref()
        .and_then(|c| c.first())
        .map(String::as_str)
        == Some("sluice")
}

/// What the test takes from the repository's `Dockerfile` about the
/// `sluice` image: where its last stage copies the binary, and its `USER`.
struct Image {
    binary: String,
    user: (i64, i64),
}

impl Image {
    fn read() -> Image {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Dockerfile");
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let last_stage = text.rsplit("\nFROM ").next().unwrap_or(&text);
        let binary = last_stage
            .lines()
            .filter(|l| l.starts_with("COPY ") && l.trim_end().ends_with("/sluice"))
            .filter_map(|l| l.split_whitespace().next_back())
            .next_back()
            .unwrap_or_else(|| {
                panic!(
                    "{}: no COPY of the sluice binary in the last stage",
                    path.display()
                )
            })
            .to_owned();
        let user = last_stage
            .lines()
            .filter_map(|l| l.strip_prefix("USER "))
            .next_back()
            .map_or((0, 0), |u| {
                let (uid, gid) = u.trim().split_once(':').unwrap_or((u.trim(), u.trim()));
                (
                    uid.parse().expect("a numeric USER"),
                    gid.parse().expect("a numeric USER group"),
                )
            });
        Image { binary, user }
    }
}

/// The pod template of a manifest of one Deployment, StatefulSet,
/// DaemonSet, ReplicaSet, Job or CronJob.
fn pod_template(manifest: &str) -> PodTemplateSpec {
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(manifest)
        .unwrap_or_else(|e| panic!("the output of sluice inject is not YAML: {e}\n{manifest}"));
    let spec = &doc["spec"];
    let template = match doc["kind"].as_str() {
        Some("CronJob") => &spec["jobTemplate"]["spec"]["template"],
        _ => &spec["template"],
    };
    serde_yaml_ng::from_value(template.clone()).unwrap_or_else(|e| {
        panic!("the pod template does not read as PodTemplateSpec: {e}\n{manifest}")
    })
}

/// An injected pod on this machine and what it holds. The fields drop in
/// order: processes first, then the veth pair, the namespace, the folder.
struct Pod {
    procs: RefCell<Procs>,
    _link: Link,
    ns: Netns,
    dir: TempDir,
    manifest: String,
    meta: ObjectMeta,
    spec: PodSpec,
    volumes: BTreeMap<String, PathBuf>,
    image: Image,
    /// A copy of this test binary that any user can run.
    exe: PathBuf,
    node_ip: Ipv4Addr,
    pod_ip: Ipv4Addr,
    /// The containers' output, by name.
    logs: RefCell<Vec<(String, PathBuf)>>,
    app_log: PathBuf,
    node_log: PathBuf,
}

impl Pod {
    /// Injects `data/kubelet/FIXTURE` with `sluice inject`, makes the pod's
    /// network (a /30 of its own, chosen by the process id and `index`) and
    /// volumes, and starts the node's servers; runs no container. `None`
    /// when namespaces cannot be made here (a skip, a failure under CI).
    fn create(fixture: &str, index: u32) -> Option<Pod> {
        let sluice = env!("CARGO_BIN_EXE_sluice");
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/kubelet")
            .join(fixture);
        let out = Command::new(sluice)
            .arg("inject")
            .arg(&fixture)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let manifest = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "sluice inject {} failed ({}):\n{}",
            fixture.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("--- sluice inject {}\n{manifest}", fixture.display());
        let template = pod_template(&manifest);
        let meta = template.metadata.unwrap_or_default();
        let spec = template.spec.expect("the pod template has no spec");

        let pid = std::process::id();
        let n = (pid * 3 + index) % 16384;
        let base = [10, 213, (n / 64) as u8, ((n % 64) * 4) as u8];
        let node_ip = Ipv4Addr::new(base[0], base[1], base[2], base[3] + 1);
        let pod_ip = Ipv4Addr::new(base[0], base[1], base[2], base[3] + 2);
        let name = format!("sluice-kubelet-{pid}-{index}");
        let dir = TempDir::create(&name);
        let ns = Netns::create(&name, WHAT)?;
        let host_if = format!("skh{pid}-{index}");
        let pod_if = format!("skp{pid}-{index}");
        run(&[
            "ip", "link", "add", &host_if, "type", "veth", "peer", "name", &pod_if,
        ]);
        let link = Link(host_if.clone());
        run(&["ip", "link", "set", &pod_if, "netns", &ns.0]);
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{node_ip}/30"),
            "dev",
            &host_if,
        ]);
        run(&["ip", "link", "set", &host_if, "up"]);
        ns.run(&["ip", "link", "set", "lo", "up"]);
        ns.run(&["ip", "link", "set", &pod_if, "name", "eth0"]);
        ns.run(&["ip", "addr", "add", &format!("{pod_ip}/30"), "dev", "eth0"]);
        ns.run(&["ip", "link", "set", "eth0", "up"]);

        let node_log = dir.0.join("node.log");
        for port in [UPSTREAM_PORT, BLOCKED_PORT] {
            node_server(SocketAddr::from((node_ip, port)), &node_log);
        }

        let svid = identity(sluice, &dir.0);
        let configmaps = BTreeMap::from([(
            POLICY_CONFIGMAP.to_owned(),
            BTreeMap::from([(POLICY_KEY.to_owned(), policy(node_ip))]),
        )]);
        let volumes = prepare_volumes(&dir.0, &meta, &spec, &configmaps, &svid, pod_ip);
        let exe = dir.0.join("kubelet-test");
        fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
        set_mode(&exe, 0o755);
        let app_log = dir.0.join("app.log");
        Some(Pod {
            procs: RefCell::new(Procs(Vec::new())),
            _link: link,
            ns,
            manifest,
            meta,
            spec,
            volumes,
            image: Image::read(),
            exe,
            node_ip,
            pod_ip,
            logs: RefCell::new(Vec::new()),
            app_log,
            node_log,
            dir,
        })
    }

    /// The application's container: the first that does not run `sluice`.
    fn app(&self) -> &Container {
        self.spec
            .containers
            .iter()
            .find(|c| !is_sluice(c))
            .expect("the application container is gone")
    }

    /// The proxy's container, native sidecar or classic.
    fn proxy(&self) -> &Container {
        self.spec
            .init_containers
            .iter()
            .flatten()
            .chain(&self.spec.containers)
            .find(|c| c.name == "sluice-proxy")
            .expect("no container `sluice-proxy`")
    }

    /// `what`, then every container's output, the node's servers' log and
    /// the injected manifest.
    fn report(&self, what: &str) -> String {
        let mut text = format!("{what}\n");
        for (name, path) in self.logs.borrow().iter() {
            text.push_str(&format!(
                "--- {name}\n{}\n",
                fs::read_to_string(path).unwrap_or_default()
            ));
        }
        text.push_str(&format!(
            "--- node servers\n{}\n--- manifest\n{}",
            fs::read_to_string(&self.node_log).unwrap_or_default(),
            self.manifest
        ));
        text
    }

    /// The proxy's `/metrics`, from the node at the readiness probe's port.
    fn metrics(&self) -> String {
        let proxy = self.proxy();
        let probe = proxy
            .readiness_probe
            .as_ref()
            .expect("the proxy has no readiness probe");
        http_get(
            SocketAddr::from((self.pod_ip, probe_port(proxy, probe))),
            "/metrics",
        )
    }

    /// Before `sluice init`, both servers on the node answer the
    /// application: what the proxy refuses later is its refusal.
    fn check_direct_egress(&self) {
        for port in [UPSTREAM_PORT, BLOCKED_PORT] {
            let addr = SocketAddr::from((self.node_ip, port));
            let seen = self.client(self.app(), addr);
            assert!(
                seen.starts_with("200 node "),
                "before sluice init, {addr}: {seen}"
            );
        }
    }

    /// From the application: the node's upstream is reached through the
    /// proxy, the blocked port is answered 403 by the proxy and never
    /// reached, and the proxy counts both.
    fn check_egress(&self) {
        let upstream = SocketAddr::from((self.node_ip, UPSTREAM_PORT));
        let blocked = SocketAddr::from((self.node_ip, BLOCKED_PORT));
        let seen = self.client(self.app(), upstream);
        assert!(
            seen.starts_with(&format!("200 node {upstream} from {}:", self.pod_ip)),
            "{}",
            self.report(&format!("allowed outbound: {seen}"))
        );
        let accepted = accepts(&self.node_log, blocked);
        let seen = self.client(self.app(), blocked);
        assert!(
            seen.starts_with("403 "),
            "{}",
            self.report(&format!("blocked outbound: {seen}"))
        );
        assert_eq!(
            accepts(&self.node_log, blocked),
            accepted,
            "{}",
            self.report("the blocked server was reached")
        );
        let counted = self.metrics();
        for line in [
            r#"sluice_egress_decisions_total{kind="http",rule="upstream",decision="allow"} "#,
            r#"sluice_egress_decisions_total{kind="http",rule="blocked",decision="deny"} "#,
        ] {
            assert!(
                counted.contains(line),
                "{}",
                self.report(&format!("the proxy did not count `{line}`:\n{counted}"))
            );
        }
    }

    /// Runs the init containers in order (a native sidecar started and
    /// ready, the others to completion with exit 0), then starts the
    /// containers and waits for their readiness probes; checks the proxy's
    /// liveness probe.
    fn run(&self) {
        let init_containers = self.spec.init_containers.clone().unwrap_or_default();
        assert!(
            !init_containers.is_empty(),
            "the injected pod has no init containers:\n{}",
            self.manifest
        );
        for c in &init_containers {
            assert!(
                is_sluice(c),
                "init container `{}` does not run `sluice`: {:?}",
                c.name,
                c.command
            );
            let argv = container_argv(c);
            let index = self.start(c, &argv, &[]);
            if c.restart_policy.as_deref() == Some("Always") {
                self.wait_ready(c, index);
            } else {
                let status = self.wait_exit(index, &format!("init container `{}`", c.name));
                assert!(
                    status.success(),
                    "{}",
                    self.report(&format!("init container `{}` exited with {status}", c.name))
                );
            }
        }
        for c in &self.spec.containers {
            let index = if is_sluice(c) {
                self.start(c, &container_argv(c), &[])
            } else {
                // The application's image: an echo server on its first
                // TCP port (or none), writing its own log as its user.
                let port = c
                    .ports
                    .iter()
                    .flatten()
                    .find(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
                    .map_or(0, |p| p.container_port);
                fs::write(&self.app_log, "").unwrap();
                set_mode(&self.app_log, 0o666);
                let args = format!("{port}|{}", self.app_log.display());
                let index = self.start(c, &self.role_argv(), &[(ROLE, "app"), (ARGS, &args)]);
                let started = Instant::now();
                while !log_lines(&self.app_log).iter().any(|l| l == "ready") {
                    assert!(
                        started.elapsed() < Duration::from_secs(30),
                        "{}",
                        self.report("the application does not start")
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
                index
            };
            self.wait_ready(c, index);
        }
        let proxy = self.proxy();
        if let Some(probe) = &proxy.liveness_probe {
            let seen = self.probe(proxy, probe);
            assert!(
                seen.starts_with("200 "),
                "{}",
                self.report(&format!("liveness probe: {seen}"))
            );
        }
    }

    /// This test's binary, as a container's command.
    fn role_argv(&self) -> Vec<String> {
        [
            self.exe.to_str().unwrap(),
            "--exact",
            TEST_NAME,
            "--nocapture",
            "--test-threads=1",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// What `setpriv` makes of a container's security context (and the
    /// pod's): user, group, capabilities, no_new_privs; and whether the
    /// root file system is read-only.
    fn security(&self, c: &Container) -> (Vec<String>, bool) {
        let pod = self.spec.security_context.clone().unwrap_or_default();
        let sc = c.security_context.clone().unwrap_or_default();
        // The image's user: the `sluice` image's `USER`, else root.
        let (image_uid, image_gid) = if is_sluice(c) {
            self.image.user
        } else {
            (0, 0)
        };
        let uid = sc.run_as_user.or(pod.run_as_user).unwrap_or(image_uid);
        let gid = sc.run_as_group.or(pod.run_as_group).unwrap_or(image_gid);
        let non_root = sc.run_as_non_root.or(pod.run_as_non_root).unwrap_or(false);
        assert!(
            !(non_root && uid == 0),
            "container `{}`: runAsNonRoot with user 0: the kubelet refuses to start it",
            c.name
        );
        let mut argv = vec![
            "setpriv".to_owned(),
            format!("--reuid={uid}"),
            format!("--regid={gid}"),
            "--clear-groups".to_owned(),
        ];
        // The container runtime's default capabilities, less `drop`, plus `add`.
        let mut caps: Vec<String> = [
            "chown",
            "dac_override",
            "fsetid",
            "fowner",
            "mknod",
            "net_raw",
            "setgid",
            "setuid",
            "setfcap",
            "setpcap",
            "net_bind_service",
            "sys_chroot",
            "kill",
            "audit_write",
        ]
        .map(str::to_owned)
        .to_vec();
        let cap_name = |s: &String| s.to_ascii_lowercase().trim_start_matches("cap_").to_owned();
        if let Some(capabilities) = &sc.capabilities {
            let drop: Vec<String> = capabilities.drop.iter().flatten().map(cap_name).collect();
            if drop.iter().any(|d| d == "all") {
                caps.clear();
            }
            caps.retain(|c| !drop.contains(c));
            for add in capabilities.add.iter().flatten().map(cap_name) {
                if !caps.contains(&add) {
                    caps.push(add);
                }
            }
        }
        let mut set = "-all".to_owned();
        for cap in &caps {
            set.push_str(&format!(",+{cap}"));
        }
        argv.push(format!("--bounding-set={set}"));
        if sc.allow_privilege_escalation == Some(false) {
            argv.push("--no-new-privs".to_owned());
        }
        argv.push("--".to_owned());
        (argv, sc.read_only_root_filesystem == Some(true))
    }

    /// Starts container `c` running `argv` (after its mounts), its output
    /// in `NAME.log`; the process is killed with the pod. Its index in
    /// `procs`.
    fn start(&self, c: &Container, argv: &[String], env: &[(&str, &str)]) -> usize {
        let log = self.dir.0.join(format!("{}.log", c.name));
        self.logs.borrow_mut().push((c.name.clone(), log.clone()));
        let child = self.spawn(c, argv, env, &log);
        let mut procs = self.procs.borrow_mut();
        procs.0.push(child);
        procs.0.len() - 1
    }

    /// The exit status of process `index`, waiting at most 60 s for it.
    fn wait_exit(&self, index: usize, what: &str) -> std::process::ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.procs.borrow_mut().0[index].try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{}",
                self.report(&format!("{what} has not exited after 60 s"))
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Spawns container `c` running `argv`, its output in `log`.
    fn spawn(&self, c: &Container, argv: &[String], env: &[(&str, &str)], log: &Path) -> Child {
        let (mut exec, read_only_root) = self.security(c);
        exec.extend(argv.iter().cloned());
        let mut mounts: Vec<(String, String, bool)> = vec![(
            env!("CARGO_BIN_EXE_sluice").to_owned(),
            self.image.binary.clone(),
            true,
        )];
        for m in c.volume_mounts.iter().flatten() {
            let src = self.volumes.get(&m.name).unwrap_or_else(|| {
                panic!(
                    "container `{}` mounts `{}`, which is not a volume of the pod",
                    c.name, m.name
                )
            });
            let src = match &m.sub_path {
                Some(sub) if !sub.is_empty() => src.join(sub),
                _ => src.clone(),
            };
            let ro = m.read_only == Some(true)
                || self.spec.volumes.iter().flatten().any(|v| {
                    v.name == m.name && v.csi.as_ref().and_then(|c| c.read_only) == Some(true)
                });
            mounts.push((src.display().to_string(), m.mount_path.clone(), ro));
        }
        let mut vars: Vec<(String, String)> = vec![
            ("PATH".to_owned(), IMAGE_PATH.to_owned()),
            ("HOSTNAME".to_owned(), "web-5d8f7c9b4-x2x7q".to_owned()),
        ];
        for e in c.env.iter().flatten() {
            let value = match (&e.value, &e.value_from) {
                (_, Some(from)) => {
                    let field = from.field_ref.as_ref().unwrap_or_else(|| {
                        panic!(
                            "container `{}`: env `{}` from other than a field",
                            c.name, e.name
                        )
                    });
                    field_value(&self.meta, &field.field_path, self.pod_ip)
                }
                (v, None) => v.clone().unwrap_or_default(),
            };
            vars.push((e.name.clone(), value));
        }
        vars.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let spec = serde_json::json!({
            "mounts": mounts,
            "scratch": self.dir.0.join("scratch").join(&c.name),
            "read_only_root": read_only_root,
            "argv": exec,
            "env": vars,
        });
        let exe = std::env::current_exe().unwrap();
        let mut cmd = self.ns.command(&[
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            exe.to_str().unwrap(),
            "--exact",
            TEST_NAME,
            "--nocapture",
            "--test-threads=1",
        ]);
        let log_file = fs::File::create(log).unwrap();
        cmd.env(ROLE, "container")
            .env(ARGS, spec.to_string())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file);
        eprintln!("start container `{}`: {argv:?}", c.name);
        cmd.spawn().unwrap()
    }

    /// Polls the container's readiness probe (and startup probe) from the
    /// node until it answers 2xx or 3xx; fails if the container exits.
    fn wait_ready(&self, c: &Container, index: usize) {
        for probe in [&c.startup_probe, &c.readiness_probe].into_iter().flatten() {
            let started = Instant::now();
            loop {
                if let Some(status) = self.procs.borrow_mut().0[index].try_wait().unwrap() {
                    panic!(
                        "{}",
                        self.report(&format!("container `{}` exited ({status})", c.name))
                    );
                }
                let seen = self.probe(c, probe);
                if seen.starts_with('2') || seen.starts_with('3') {
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "{}",
                    self.report(&format!("container `{}` is not ready: {seen}", c.name))
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }

    /// One HTTP probe, from the node to the pod's IP: `STATUS BODY`.
    fn probe(&self, c: &Container, probe: &Probe) -> String {
        let get = probe.http_get.as_ref().expect("an httpGet probe");
        assert!(
            get.scheme.as_deref().unwrap_or("HTTP") == "HTTP",
            "container `{}`: a probe over {:?}",
            c.name,
            get.scheme
        );
        let host: Ipv4Addr = get
            .host
            .as_deref()
            .map_or(self.pod_ip, |h| h.parse().unwrap());
        http_get(
            SocketAddr::from((host, probe_port(c, probe))),
            get.path.as_deref().unwrap_or("/"),
        )
    }

    /// One HTTP request from inside the pod, as container `app` (its user
    /// and security context): `STATUS BODY`.
    fn client(&self, app: &Container, addr: SocketAddr) -> String {
        let log = self.dir.0.join("client.log");
        let argv = self.role_argv();
        let mut client = Container {
            volume_mounts: None,
            ..app.clone()
        };
        client.name = format!("{}-client", app.name);
        let args = addr.to_string();
        let child = self.spawn(&client, &argv, &[(ROLE, "client"), (ARGS, &args)], &log);
        let index = {
            let mut procs = self.procs.borrow_mut();
            procs.0.push(child);
            procs.0.len() - 1
        };
        let status = self.wait_exit(index, "the client");
        let text = fs::read_to_string(&log).unwrap_or_default();
        let result = text
            .lines()
            .find_map(|l| l.split_once("@@RESULT ").map(|(_, r)| r.to_owned()))
            .unwrap_or_else(|| panic!("the client printed no result ({status}):\n{text}"));
        eprintln!("client {addr}: {result}");
        result
    }
}

/// A CA for `cluster.local` and the SVID cert-manager's CSI driver would
/// issue to the fixture's service account: `(cert, key, ca)` paths; also
/// `ca/client.pem` and `ca/client.key`, the SVID of [`CLIENT_ID`].
fn identity(sluice: &str, dir: &Path) -> [PathBuf; 3] {
    let ca = dir.join("ca");
    let id = format!("spiffe://cluster.local/ns/{NAMESPACE}/sa/{SERVICE_ACCOUNT}");
    let svid = ca.join("web");
    let client = ca.join("client");
    for args in [
        vec![
            "identity",
            "ca",
            "--trust-domain",
            "cluster.local",
            "--out",
            ca.to_str().unwrap(),
        ],
        vec![
            "identity",
            "issue",
            "--ca",
            ca.to_str().unwrap(),
            "--id",
            &id,
            "--out",
            svid.to_str().unwrap(),
        ],
        vec![
            "identity",
            "issue",
            "--ca",
            ca.to_str().unwrap(),
            "--id",
            CLIENT_ID,
            "--out",
            client.to_str().unwrap(),
        ],
    ] {
        let out = Command::new(sluice).args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "sluice {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    [
        svid.with_extension("pem"),
        svid.with_extension("key"),
        ca.join("ca.pem"),
    ]
}

/// Lays out every volume of the pod as the kubelet would, each in a folder
/// of its own: volume name → folder.
fn prepare_volumes(
    dir: &Path,
    meta: &ObjectMeta,
    spec: &PodSpec,
    configmaps: &BTreeMap<String, BTreeMap<String, String>>,
    svid: &[PathBuf; 3],
    pod_ip: Ipv4Addr,
) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    for volume in spec.volumes.iter().flatten() {
        let path = dir.join("volumes").join(&volume.name);
        fs::create_dir_all(&path).unwrap();
        set_mode(&path, 0o755);
        write_volume(&path, volume, meta, configmaps, svid, pod_ip);
        out.insert(volume.name.clone(), path);
    }
    out
}

fn write_volume(
    path: &Path,
    volume: &Volume,
    meta: &ObjectMeta,
    configmaps: &BTreeMap<String, BTreeMap<String, String>>,
    svid: &[PathBuf; 3],
    pod_ip: Ipv4Addr,
) {
    let name = &volume.name;
    if let Some(cm) = &volume.config_map {
        let data = configmaps.get(&cm.name).unwrap_or_else(|| {
            panic!("volume `{name}` mounts the ConfigMap `{}`, which the pod's namespace does not have", cm.name)
        });
        let files: Vec<(String, String)> = match &cm.items {
            Some(items) => items
                .iter()
                .map(|i| {
                    let value = data.get(&i.key).unwrap_or_else(|| {
                        panic!(
                            "volume `{name}`: the ConfigMap `{}` has no key `{}`",
                            cm.name, i.key
                        )
                    });
                    (i.path.clone(), value.clone())
                })
                .collect(),
            None => data.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        };
        atomic_write(path, &files, cm.default_mode.unwrap_or(0o644));
    } else if let Some(dw) = &volume.downward_api {
        let files: Vec<(String, String)> = dw
            .items
            .iter()
            .flatten()
            .map(|item| {
                let field = item.field_ref.as_ref().unwrap_or_else(|| {
                    panic!("volume `{name}`: item `{}` has no fieldRef", item.path)
                });
                (
                    item.path.clone(),
                    field_value(meta, &field.field_path, pod_ip),
                )
            })
            .collect();
        atomic_write(path, &files, dw.default_mode.unwrap_or(0o644));
    } else if let Some(csi) = &volume.csi {
        assert_eq!(
            csi.driver, "spiffe.csi.cert-manager.io",
            "volume `{name}`: this test plays cert-manager's csi-driver-spiffe only"
        );
        assert_eq!(
            csi.read_only,
            Some(true),
            "volume `{name}`: the CSI driver wants `readOnly: true`"
        );
        // As cert-manager's csi-lib writes them: through `..data`, the
        // folder 0550 and the files 0440, owned by root and by the group
        // its `fs-group` volume attribute names (else root's).
        let group = csi
            .volume_attributes
            .as_ref()
            .and_then(|a| a.get("spiffe.csi.cert-manager.io/fs-group"))
            .map(|g| {
                g.parse::<u32>()
                    .unwrap_or_else(|_| panic!("volume `{name}`: fs-group `{g}` is not a gid"))
            });
        let files: Vec<(String, String)> = svid
            .iter()
            .zip(["tls.crt", "tls.key", "ca.crt"])
            .map(|(src, file)| (file.to_owned(), fs::read_to_string(src).unwrap()))
            .collect();
        atomic_write(path, &files, 0o440);
        for entry in fs::read_dir(path).unwrap() {
            let entry = entry.unwrap().path();
            if entry.is_dir() && !entry.is_symlink() {
                for file in fs::read_dir(&entry).unwrap() {
                    std::os::unix::fs::lchown(file.unwrap().path(), Some(0), group).unwrap();
                }
            }
        }
        std::os::unix::fs::lchown(path, Some(0), group).unwrap();
        set_mode(path, 0o550);
    } else if volume.empty_dir.is_some() {
        set_mode(path, 0o777);
    } else {
        panic!("volume `{name}` is of a kind this test does not play: {volume:?}");
    }
}

/// The value of a downward API `fieldPath`.
fn field_value(meta: &ObjectMeta, field: &str, pod_ip: Ipv4Addr) -> String {
    let keyed = |prefix: &str, map: &Option<BTreeMap<String, String>>| {
        let key = field.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(
            map.as_ref()
                .and_then(|m| m.get(key))
                .cloned()
                .unwrap_or_default(),
        )
    };
    if let Some(v) = keyed("metadata.annotations['", &meta.annotations) {
        return v;
    }
    if let Some(v) = keyed("metadata.labels['", &meta.labels) {
        return v;
    }
    match field {
        "metadata.namespace" => NAMESPACE.to_owned(),
        "metadata.name" => "web-5d8f7c9b4-x2x7q".to_owned(),
        "spec.serviceAccountName" => SERVICE_ACCOUNT.to_owned(),
        "status.podIP" => pod_ip.to_string(),
        other => panic!("a downward API field this test does not play: `{other}`"),
    }
}

/// Files as the kubelet's atomic writer lays them out: in a timestamped
/// folder that `..data` points to, each name a symlink through `..data`.
/// Again on the same folder: an update, as the kubelet makes it when a
/// ConfigMap changes (a new folder, `..data` renamed over, the old removed).
fn atomic_write(dir: &Path, files: &[(String, String)], mode: i32) {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let data = dir.join(format!("..{stamp}"));
    for (name, value) in files {
        assert!(
            !name.starts_with("..") && !name.contains("/.."),
            "a volume file name the kubelet refuses: `{name}`"
        );
        let file = data.join(name);
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(&file, value).unwrap();
        set_mode(&file, mode as u32);
        let top = name.split('/').next().unwrap();
        let link = dir.join(top);
        if fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(top), link).unwrap();
        }
    }
    fs::create_dir_all(&data).unwrap();
    set_mode(&data, 0o755);
    let old = fs::read_link(dir.join("..data")).ok();
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(data.file_name().unwrap(), &tmp).unwrap();
    fs::rename(&tmp, dir.join("..data")).unwrap();
    if let Some(old) = old {
        fs::remove_dir_all(dir.join(old)).unwrap();
    }
}

/// A container's `command` followed by its `args`, as the kubelet runs it
/// when the command is given (the image's entrypoint is not used).
fn container_argv(c: &Container) -> Vec<String> {
    let command = c
        .command
        .clone()
        .unwrap_or_else(|| panic!("container `{}` has no command", c.name));
    command
        .into_iter()
        .chain(c.args.clone().unwrap_or_default())
        .collect()
}

/// The port of an HTTP probe, a number or the name of a container port.
fn probe_port(c: &Container, probe: &Probe) -> u16 {
    let get = probe.http_get.as_ref().unwrap_or_else(|| {
        panic!(
            "container `{}`: a probe that is not httpGet: {probe:?}",
            c.name
        )
    });
    match &get.port {
        IntOrString::Int(p) => u16::try_from(*p).expect("a probe port"),
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .map(|p| u16::try_from(p.container_port).expect("a container port"))
            .unwrap_or_else(|| {
                panic!(
                    "container `{}`: the probe names no port of it: `{name}`",
                    c.name
                )
            }),
    }
}

/// A server on the node: answers each HTTP request with
/// `node ADDR from PEER`; logs `accept ADDR from PEER`.
fn node_server(addr: SocketAddr, log: &Path) {
    let listener = TcpListener::bind(addr).unwrap();
    let log = Arc::new(Mutex::new(
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap(),
    ));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let peer = stream.peer_addr().unwrap();
            {
                let mut f = log.lock().unwrap();
                let _ = writeln!(f, "accept {addr} from {peer}");
            }
            std::thread::spawn(move || {
                let _ = read_head(&mut stream);
                let body = format!("node {addr} from {peer}");
                let _ = stream.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
            });
        }
    });
}

/// How many connections the node's server at `addr` has accepted.
fn accepts(log: &Path, addr: SocketAddr) -> usize {
    log_lines(log)
        .iter()
        .filter(|l| l.starts_with(&format!("accept {addr} ")))
        .count()
}

/// Reads a request or response head (up to the empty line), at most 64 KiB
/// or 10 s.
fn read_head(stream: &mut TcpStream) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    while !data.windows(4).any(|w| w == b"\r\n\r\n") && data.len() < 65536 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
    data
}

/// `GET PATH` over HTTP/1.1 with `connection: close`: `STATUS BODY`, or
/// `error: ...`.
fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut stream = match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
        Ok(s) => s,
        Err(e) => return format!("error: connect {addr}: {}", e.kind()),
    };
    let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    if let Err(e) = stream.write_all(request.as_bytes()) {
        return format!("error: write: {}", e.kind());
    }
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut data = Vec::new();
    if let Err(e) = stream.read_to_end(&mut data) {
        if data.is_empty() {
            return format!("error: read: {}", e.kind());
        }
    }
    let text = String::from_utf8_lossy(&data);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return format!("error: no response: {text:?}");
    };
    let status = head.split(' ').nth(1).unwrap_or("?");
    format!("{status} {}", body.trim_end())
}

/// What the re-executed binary does.
mod roles {
    use super::*;

    fn args() -> String {
        std::env::var(ARGS).unwrap_or_default()
    }

    /// A container, inside its mount namespace (as root): mounts, then
    /// `exec` of its `setpriv ... -- COMMAND` with its environment alone.
    pub fn container() {
        let spec: serde_json::Value = serde_json::from_str(&args()).unwrap();
        let scratch = PathBuf::from(spec["scratch"].as_str().unwrap());
        let mounts: Vec<(String, String, bool)> =
            serde_json::from_value(spec["mounts"].clone()).unwrap();
        let argv: Vec<String> = serde_json::from_value(spec["argv"].clone()).unwrap();
        let env: Vec<(String, String)> = serde_json::from_value(spec["env"].clone()).unwrap();
        let mount = |args: &[&str]| {
            let out = Command::new("mount").args(args).output().unwrap();
            assert!(
                out.status.success(),
                "mount {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        // Mount points missing here are made in an overlay of their nearest
        // existing folder, so this machine's own folders are not touched.
        let mut overlays: Vec<PathBuf> = Vec::new();
        let mut missing: Vec<(PathBuf, PathBuf)> = Vec::new();
        for (src, dst, _) in &mounts {
            let dst = PathBuf::from(dst);
            if dst.exists() {
                continue;
            }
            let mut parent = dst.parent().unwrap().to_owned();
            while !parent.exists() {
                parent = parent.parent().unwrap().to_owned();
            }
            let parent = fs::canonicalize(&parent).unwrap();
            assert!(
                parent != Path::new("/"),
                "a mount point under `/` itself: {dst:?}"
            );
            missing.push((dst, PathBuf::from(src)));
            overlays.push(parent);
        }
        overlays.sort_by_key(|p| p.components().count());
        overlays.dedup();
        let mut made: Vec<PathBuf> = Vec::new();
        for (i, lower) in overlays.iter().enumerate() {
            if made.iter().any(|m| lower.starts_with(m)) {
                continue;
            }
            let upper = scratch.join(format!("overlay{i}/upper"));
            let work = scratch.join(format!("overlay{i}/work"));
            fs::create_dir_all(&upper).unwrap();
            fs::create_dir_all(&work).unwrap();
            let options = format!(
                "lowerdir={},upperdir={},workdir={}",
                lower.display(),
                upper.display(),
                work.display()
            );
            mount(&[
                "-t",
                "overlay",
                "overlay",
                "-o",
                &options,
                lower.to_str().unwrap(),
            ]);
            made.push(lower.clone());
        }
        for (dst, src) in &missing {
            if src.is_dir() {
                fs::create_dir_all(dst).unwrap();
            } else {
                fs::create_dir_all(dst.parent().unwrap()).unwrap();
                fs::write(dst, b"").unwrap();
            }
        }
        let mut sorted = mounts.clone();
        sorted.sort_by_key(|(_, dst, _)| Path::new(dst).components().count());
        for (src, dst, ro) in &sorted {
            mount(&["--bind", src, dst]);
            if *ro {
                mount(&["-o", "remount,bind,ro", dst]);
            }
        }
        if spec["read_only_root"].as_bool() == Some(true) {
            mount(&["-o", "remount,bind,ro", "/"]);
            for m in &made {
                mount(&["-o", "remount,bind,ro", m.to_str().unwrap()]);
            }
        }
        let err = Command::new(&argv[0])
            .args(&argv[1..])
            .env_clear()
            .envs(env)
            .current_dir("/")
            .exec();
        panic!("exec {argv:?}: {err}");
    }

    /// The application: `PORT|LOG`. Listens on every address of the pod;
    /// answers each request with `app METHOD PATH from PEER`. Port 0: it
    /// serves nothing and waits to be killed.
    pub fn app() {
        let args = args();
        let (port, log) = args.split_once('|').unwrap();
        let port = port.parse::<u16>().unwrap();
        if port == 0 {
            fs::write(log, "ready\n").unwrap();
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        let listener = TcpListener::bind(("0.0.0.0", port)).unwrap();
        let log = Arc::new(Mutex::new(
            fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap(),
        ));
        let note = move |line: String| {
            let mut f = log.lock().unwrap();
            writeln!(f, "{line}").unwrap();
            f.flush().unwrap();
        };
        note("ready".to_owned());
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let peer = stream.peer_addr().unwrap();
            let note = note.clone();
            std::thread::spawn(move || {
                let head = read_head(&mut stream);
                let text = String::from_utf8_lossy(&head);
                let line = text.lines().next().unwrap_or("");
                let mut words = line.split(' ');
                let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                let identity = text
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.eq_ignore_ascii_case("x-sluice-peer-identity"))
                    .map_or("", |(_, v)| v.trim());
                let body = format!("app {method} {path} from {peer} identity={identity}");
                note(body.clone());
                let _ = stream.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
            });
        }
    }

    /// One request from inside the pod: `ADDR`; prints `@@RESULT ...`.
    pub fn client() {
        let addr: SocketAddr = args().parse().unwrap();
        println!("\n@@RESULT {}", http_get(addr, "/"));
    }
}
