//! `sluice inject` and `sluice uninject`: Kubernetes YAML in, the same YAML
//! out with the proxy added to (or removed from) every pod template
//! (`sluice_kube::yaml_documents`).
//!
//! The injected YAML goes to standard output, one line per workload to
//! standard error (`deployment/web injected`). As `linkerd inject` does,
//! when any workload cannot be injected (`hostNetwork`, a bad annotation)
//! nothing is written to standard output, every such workload is named on
//! standard error, and the exit status is 1, so that a pipe into `kubectl
//! apply` never applies a workload without its proxy. Exit 1 too for input
//! that is not Kubernetes YAML; exit 2 when the file cannot be read.

use crate::args::{
    AppProtocolArg, IdentityArg, InjectArgs, InjectSettings, SidecarArg, UninjectArgs,
};
use crate::cmd::io_failure;
use crate::{Io, EXIT_FAILED, EXIT_OK};
use sluice_kube::annotations::{AppProtocol, Identity, Sidecar};
use sluice_kube::inject::{InjectConfig, PolicySource};
use sluice_kube::yaml_documents::{self, Transformed, YamlError};
use std::io;
use std::path::{Path, PathBuf};

/// The injection settings the flags give (the defaults of pods whose
/// annotations do not say).
pub fn config(settings: &InjectSettings) -> InjectConfig {
    let defaults = InjectConfig::default();
    let policy = match (&settings.policy_source, &settings.policy_keys_configmap) {
        (Some(reference), Some(keys)) => PolicySource::Remote {
            reference: reference.clone(),
            keys_configmap: keys.clone(),
        },
        _ => match &settings.policy_configmap {
            Some(name) => PolicySource::ConfigMap(name.clone()),
            None => defaults.policy,
        },
    };
    InjectConfig {
        proxy_image: settings.proxy_image.clone().unwrap_or(defaults.proxy_image),
        sidecar: match settings.sidecar {
            SidecarArg::Native => Sidecar::Native,
            SidecarArg::Classic => Sidecar::Classic,
        },
        identity: match settings.identity {
            IdentityArg::SpiffeCsi => Identity::SpiffeCsi,
            IdentityArg::CertManager => Identity::CertManager,
        },
        trust_domain: settings.trust_domain.clone(),
        policy,
        inbound_ports: settings.inbound_ports.clone(),
        skip_inbound_ports: settings.skip_inbound_ports.clone(),
        skip_outbound_ports: settings.skip_outbound_ports.clone(),
        app_protocol: match settings.app_protocol {
            AppProtocolArg::Auto => AppProtocol::Auto,
            AppProtocolArg::Http1 => AppProtocol::Http1,
            AppProtocolArg::H2c => AppProtocol::H2c,
        },
    }
}

/// Runs `sluice inject`.
pub fn run_inject(args: &InjectArgs, io: &mut Io<'_>) -> io::Result<u8> {
    let config = config(&args.settings);
    if let (true, Some(cert), Some(key)) = (args.serve, &args.cert, &args.key) {
        return crate::cmd::webhook::run(args.listen, cert, key, config, io);
    }
    run(args.file.as_deref(), io, |text| {
        yaml_documents::inject_documents(text, &config)
    })
}

/// Runs `sluice uninject`.
pub fn run_uninject(args: &UninjectArgs, io: &mut Io<'_>) -> io::Result<u8> {
    run(args.file.as_deref(), io, yaml_documents::uninject_documents)
}

fn run(
    file: Option<&Path>,
    io: &mut Io<'_>,
    transform: impl FnOnce(&str) -> Result<Transformed, YamlError>,
) -> io::Result<u8> {
    let (name, text) = match read_input(file, io) {
        Ok(read) => read,
        Err(message) => return io_failure(io, message),
    };
    let out = match transform(&text) {
        Ok(out) => out,
        Err(e) => {
            writeln!(io.err, "error: {name}: {e}")?;
            return Ok(EXIT_FAILED);
        }
    };
    if out.refused().next().is_some() {
        for report in out.refused() {
            writeln!(io.err, "error: {name}: {report}")?;
        }
        writeln!(
            io.err,
            "error: nothing was written: a workload that cannot be injected would run without its proxy"
        )?;
        return Ok(EXIT_FAILED);
    }
    io.out.write_all(out.yaml.as_bytes())?;
    io.out.flush()?;
    for report in &out.reports {
        writeln!(io.err, "{report}")?;
    }
    Ok(EXIT_OK)
}

/// The input's name for messages, and its text.
fn read_input(file: Option<&Path>, io: &mut Io<'_>) -> Result<(String, String), String> {
    let mut text = String::new();
    match file {
        None => read_stdin(io, &mut text),
        Some(p) if p == Path::new("-") => read_stdin(io, &mut text),
        Some(p) => {
            let path = PathBuf::from(p);
            text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
            Ok(format!("`{}`", path.display()))
        }
    }
    .map(|name| (name, text))
}

fn read_stdin(io: &mut Io<'_>, text: &mut String) -> Result<String, String> {
    io.stdin
        .read_to_string(text)
        .map_err(|e| format!("cannot read standard input: {e}"))?;
    Ok("standard input".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command};
    use clap::Parser;
    use sluice_kube::annotations::PortRange;

    fn run_cli(args: &[&str], stdin: &str) -> (u8, String, String) {
        let cli =
            Cli::try_parse_from(std::iter::once("sluice").chain(args.iter().copied())).unwrap();
        let mut input = stdin.as_bytes();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut io = Io {
            stdin: &mut input,
            out: &mut out,
            err: &mut err,
        };
        let status = crate::run(cli, &mut io).unwrap();
        (
            status,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: example/web:1
        ports: [{containerPort: 8080}]
";

    #[test]
    fn flags_become_the_config() {
        let Command::Inject(a) = Cli::try_parse_from([
            "sluice",
            "inject",
            "--sidecar",
            "classic",
            "--identity",
            "cert-manager",
            "--trust-domain",
            "prod.example.com",
            "--proxy-image",
            "registry.example/sluice:dev",
            "--policy-source",
            "oci://registry.example/p:v1",
            "--policy-keys-configmap",
            "keys",
            "--inbound-ports",
            "8080,9090",
            "--skip-outbound-ports",
            "25,8000-8099",
            "--skip-inbound-ports",
            "22",
            "--app-protocol",
            "http1",
            "web.yaml",
        ])
        .unwrap()
        .command
        else {
            panic!()
        };
        assert_eq!(a.file.as_deref(), Some(Path::new("web.yaml")));
        assert_eq!(
            config(&a.settings),
            InjectConfig {
                proxy_image: "registry.example/sluice:dev".into(),
                sidecar: Sidecar::Classic,
                identity: Identity::CertManager,
                trust_domain: "prod.example.com".into(),
                policy: PolicySource::Remote {
                    reference: "oci://registry.example/p:v1".into(),
                    keys_configmap: "keys".into(),
                },
                inbound_ports: Some(vec![8080, 9090]),
                skip_inbound_ports: vec![PortRange::one(22)],
                skip_outbound_ports: vec![
                    PortRange::one(25),
                    PortRange {
                        first: 8000,
                        last: 8099
                    }
                ],
                app_protocol: AppProtocol::Http1,
            }
        );
        let Command::Inject(a) = Cli::try_parse_from(["sluice", "inject"]).unwrap().command else {
            panic!()
        };
        assert_eq!(config(&a.settings), InjectConfig::default());
        let bad = |args: &[&str]| {
            Cli::try_parse_from(["sluice", "inject"].iter().chain(args).copied()).is_err()
        };
        assert!(
            bad(&["--policy-source", "oci://r/p:v1"]),
            "keys are required"
        );
        assert!(bad(&[
            "--policy-configmap",
            "a",
            "--policy-source",
            "oci://r/p:v1",
            "--policy-keys-configmap",
            "k"
        ]));
        assert!(bad(&["--policy-configmap", "Not_A_Name"]));
        assert!(bad(&["--sidecar", "sometimes"]));
        assert!(bad(&["--app-protocol", "http2"]));
        assert!(bad(&["--inbound-ports", "80-90"]));
        assert!(bad(&["--skip-outbound-ports", "25,"]));
        assert!(bad(&["--proxy-image", ""]));
    }

    #[test]
    fn inject_then_uninject_through_the_commands() {
        let (status, out, err) = run_cli(&["inject", "--sidecar", "classic"], DEPLOYMENT);
        assert_eq!(status, EXIT_OK, "{err}");
        assert_eq!(err, "deployment/web injected\n");
        assert!(out.contains("name: sluice-proxy"), "{out}");
        let (status, again, err) = run_cli(&["inject", "-"], &out);
        assert_eq!(status, EXIT_OK);
        assert_eq!(again, out);
        assert_eq!(
            err,
            "deployment/web skipped: already injected (`sluice.io/injected`)\n"
        );
        let (status, back, err) = run_cli(&["uninject"], &out);
        assert_eq!(status, EXIT_OK, "{err}");
        assert_eq!(err, "deployment/web uninjected\n");
        let original: serde_yaml_ng::Value = serde_yaml_ng::from_str(DEPLOYMENT).unwrap();
        assert_eq!(back, serde_yaml_ng::to_string(&original).unwrap());
    }

    #[test]
    fn a_refused_workload_writes_nothing() {
        let host = DEPLOYMENT
            .replace("name: web}", "name: node-agent}")
            .replace("    spec:\n", "    spec:\n      hostNetwork: true\n");
        let input = format!("{DEPLOYMENT}---\n{host}");
        let (status, out, err) = run_cli(&["inject"], &input);
        assert_eq!(status, EXIT_FAILED);
        assert_eq!(out, "");
        assert!(
            err.starts_with(
                "error: standard input: deployment/node-agent not injected: \
                 the pod template uses `hostNetwork: true`"
            ),
            "{err}"
        );
        assert!(err.ends_with("would run without its proxy\n"), "{err}");
        assert!(!err.contains("deployment/web"), "{err}");
    }

    /// The containers' commands parse as `sluice init` and `sluice proxy`
    /// arguments, and the generated TOML as the proxy's configuration, for
    /// each variant.
    #[test]
    fn injected_commands_and_config_are_what_sluice_reads() {
        let variants: [&[&str]; 2] = [
            &["inject"],
            &[
                "inject",
                "--sidecar",
                "classic",
                "--identity",
                "cert-manager",
                "--policy-source",
                "oci://registry.example:5000/team/policy:prod",
                "--policy-keys-configmap",
                "keys",
                "--skip-outbound-ports",
                "25,8000-8099",
                "--skip-inbound-ports",
                "22",
                "--app-protocol",
                "h2c",
            ],
        ];
        let two_ports = DEPLOYMENT.replace(
            "ports: [{containerPort: 8080}]",
            "ports: [{containerPort: 8080}, {containerPort: 9090, protocol: TCP}, {containerPort: 53, protocol: UDP}]",
        );
        for args in variants {
            let (status, out, err) = run_cli(args, &two_ports);
            assert_eq!(status, EXIT_OK, "{err}");
            let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&out).unwrap();
            let template = &doc["spec"]["template"];
            let containers = template["spec"]["initContainers"]
                .as_sequence()
                .into_iter()
                .chain(template["spec"]["containers"].as_sequence())
                .flatten();
            let command = |name: &str| -> Vec<String> {
                let c = containers
                    .clone()
                    .find(|c| c["name"].as_str() == Some(name))
                    .unwrap();
                serde_yaml_ng::from_value(c["command"].clone()).unwrap()
            };
            let Command::Init(init) = Cli::try_parse_from(command("sluice-init")).unwrap().command
            else {
                panic!("not `sluice init`")
            };
            assert_eq!(
                (init.outbound_port, init.proxy_uid),
                (Some(4140), Some(2102))
            );
            let redirects: Vec<(u16, u16)> = init
                .inbound
                .iter()
                .map(|r| (r.port, r.proxy_port))
                .collect();
            assert_eq!(redirects, [(8080, 4143), (9090, 4144)]);
            assert!(init
                .skip_inbound_ports
                .iter()
                .any(|r| r.first == 4191 && r.last == 4191));
            assert!(!init.print && !init.legacy);
            let Command::Proxy(proxy) = Cli::try_parse_from(command("sluice-proxy"))
                .unwrap()
                .command
            else {
                panic!("not `sluice proxy`")
            };
            assert_eq!(proxy.config, Path::new("/etc/sluice/proxy/proxy.toml"));
            let toml = template["metadata"]["annotations"]["sluice.io/proxy-config"]
                .as_str()
                .unwrap();
            let config = sluice_proxy::config::Config::parse(toml, Path::new("/etc/sluice/proxy"))
                .unwrap_or_else(|e| panic!("{e}\n{toml}"));
            let listeners: Vec<(String, u16, String)> = config
                .inbound
                .iter()
                .map(|l| (l.listen.to_string(), l.port, l.app.to_string()))
                .collect();
            assert_eq!(
                listeners,
                [
                    ("0.0.0.0:4143".into(), 8080, "127.0.0.1:8080".into()),
                    ("0.0.0.0:4144".into(), 9090, "127.0.0.1:9090".into()),
                ]
            );
            let app_protocol = if args.len() > 1 {
                sluice_proxy::config::AppProtocol::H2c
            } else {
                sluice_proxy::config::AppProtocol::Auto
            };
            assert!(config
                .inbound
                .iter()
                .all(|l| l.app_protocol == app_protocol));
            assert_eq!(config.admin.listen.to_string(), "0.0.0.0:4191");
            assert_eq!(config.outbound[0].listen.to_string(), "127.0.0.1:4140");
            assert_eq!(
                config.outbound[0].mode,
                sluice_proxy::config::OutboundMode::Transparent
            );
            if args.len() > 1 {
                let remote = config.policy.remote.as_ref().unwrap();
                assert_eq!(remote.keys, [Path::new("/etc/sluice/policy/signer.pub")]);
                assert_eq!(
                    remote.cache_dir.as_deref(),
                    Some(Path::new("/var/cache/sluice"))
                );
                let id = config.identity.as_ref().unwrap();
                assert_eq!(
                    id.cert.as_deref(),
                    Some(Path::new("/var/run/secrets/spiffe.io/tls.crt"))
                );
                assert_eq!(init.skip_outbound_ports.len(), 2);
            } else {
                assert_eq!(
                    config.policy_path(),
                    Path::new("/etc/sluice/policy/policy.sluice")
                );
                let id = config.identity.as_ref().unwrap();
                assert_eq!(
                    id.workload_api.as_deref(),
                    Some("unix:///spiffe-workload-api/spire-agent.sock")
                );
            }
        }
    }

    #[test]
    fn bad_input() {
        let (status, out, err) = run_cli(&["inject"], "kind: [");
        assert_eq!((status, out.as_str()), (EXIT_FAILED, ""));
        assert!(
            err.starts_with("error: standard input: document 1 is not valid YAML"),
            "{err}"
        );
        let (status, _, err) = run_cli(&["uninject", "/nonexistent/web.yaml"], "");
        assert_eq!(status, crate::EXIT_IO);
        assert!(
            err.starts_with("error: cannot read `/nonexistent/web.yaml`"),
            "{err}"
        );
    }
}
