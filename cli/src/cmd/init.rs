//! `sluice init`: the iptables rules that send a workload's TCP through its
//! sidecar, as linkerd-init writes them. Run once per pod network namespace,
//! as root, before the application starts.
//!
//! The rules live in two chains of the `nat` table, so running the command
//! again replaces them instead of adding copies: the chains are flushed and
//! refilled, and the jumps to them are added only when missing. They are
//! applied with `iptables-restore --noflush` (`iptables-legacy-restore` with
//! `--legacy`; `ip6tables-restore` too with `--ipv6`):
//!
//! - `OUTPUT` → `SLUICE_OUTPUT`, outgoing connections: the proxy's own (by
//!   `--proxy-uid`) return untouched; so do connections to loopback
//!   addresses (`127.0.0.0/8`, `::1`), so local app-to-app calls and the
//!   application's calls to the proxy itself are left alone; so do the
//!   `--skip-outbound-ports`. Every other TCP connection is redirected to
//!   the proxy's transparent outbound listener, `--outbound-port`, including
//!   connections to the pod's own non-loopback addresses (decided as egress).
//! - `PREROUTING` → `SLUICE_PREROUTING`, incoming connections: the
//!   `--skip-inbound-ports` return first, then each `--inbound PORT=PROXYPORT`
//!   redirects the application port to the proxy's inbound listener.
//!
//! Exit 2: bad arguments; exit 1: `iptables-restore` failed (its standard
//! error is reported).

use crate::args::InitArgs;
use crate::{Io, EXIT_FAILED, EXIT_OK};
use std::fmt;
use std::io::{self, Write};
use std::process::{Command, Stdio};

/// The chain of the `nat` table that `OUTPUT` jumps to.
pub const OUTPUT_CHAIN: &str = "SLUICE_OUTPUT";
/// The chain of the `nat` table that `PREROUTING` jumps to.
pub const PREROUTING_CHAIN: &str = "SLUICE_PREROUTING";

/// A TCP port or an inclusive range of them, as `9990` or `8000-8099`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    /// The first port.
    pub first: u16,
    /// The last port (equal to `first` for a single port).
    pub last: u16,
}

impl PortRange {
    /// Parses `PORT` or `FIRST-LAST` (ports 1 to 65535, `FIRST <= LAST`).
    pub fn parse(s: &str) -> Result<PortRange, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("an empty port in the list".to_owned());
        }
        match s.split_once('-') {
            None => port(s).map(|p| PortRange { first: p, last: p }),
            Some((a, b)) => {
                let (first, last) = (port(a)?, port(b)?);
                if first > last {
                    return Err(format!(
                        "`{s}` is not a port range: `{first}` is larger than `{last}`"
                    ));
                }
                Ok(PortRange { first, last })
            }
        }
    }

    fn contains(&self, p: u16) -> bool {
        (self.first..=self.last).contains(&p)
    }
}

/// As iptables writes it: `9990` or `8000:8099`.
impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}:{}", self.first, self.last)
        }
    }
}

/// One `--inbound PORT=PROXYPORT`: incoming TCP to the application's `port`
/// goes to the proxy's inbound listener on `proxy_port`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InboundRedirect {
    /// The application's port, as clients address it.
    pub port: u16,
    /// The proxy's inbound listener port.
    pub proxy_port: u16,
}

impl InboundRedirect {
    /// Parses `PORT=PROXYPORT`, e.g. `8080=4143`.
    pub fn parse(s: &str) -> Result<InboundRedirect, String> {
        let Some((a, b)) = s.split_once('=') else {
            return Err(format!("`{s}` is not `PORT=PROXYPORT`, e.g. `8080=4143`"));
        };
        let (port, proxy_port) = (port(a)?, port(b)?);
        if port == proxy_port {
            return Err(format!("`{s}` redirects a port to itself"));
        }
        Ok(InboundRedirect { port, proxy_port })
    }
}

/// A port number from 1 to 65535.
pub fn port(s: &str) -> Result<u16, String> {
    let s = s.trim();
    match s.parse::<u16>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(format!("`{s}` is not a port (1 to 65535)")),
    }
}

/// What to redirect: the checked options of `sluice init`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InitOptions {
    /// The proxy's transparent outbound listener; `None`: outgoing traffic is
    /// not redirected.
    pub outbound_port: Option<u16>,
    /// Incoming ports redirected to the proxy's inbound listeners.
    pub inbound: Vec<InboundRedirect>,
    /// The proxy's user id, whose connections are never redirected.
    pub proxy_uid: Option<u32>,
    /// Outgoing destination ports never redirected.
    pub skip_outbound_ports: Vec<PortRange>,
    /// Incoming ports never redirected.
    pub skip_inbound_ports: Vec<PortRange>,
}

impl InitOptions {
    /// The options of a command line, checked.
    pub fn from_args(args: &InitArgs) -> Result<InitOptions, String> {
        let options = InitOptions {
            outbound_port: args.outbound_port,
            inbound: args.inbound.clone(),
            proxy_uid: args.proxy_uid,
            skip_outbound_ports: args.skip_outbound_ports.clone(),
            skip_inbound_ports: args.skip_inbound_ports.clone(),
        };
        options.check()?;
        Ok(options)
    }

    /// Refuses options that redirect nothing, loop, or contradict themselves.
    pub fn check(&self) -> Result<(), String> {
        if self.outbound_port.is_none() && self.inbound.is_empty() {
            return Err("nothing to redirect: give `--outbound-port`, `--inbound` or both".into());
        }
        let mut ports = (self.outbound_port.into_iter())
            .chain(self.inbound.iter().flat_map(|r| [r.port, r.proxy_port]));
        if let Some(p) = ports.find(|&p| p == 0) {
            return Err(format!("`{p}` is not a port (1 to 65535)"));
        }
        let mut ranges = self
            .skip_outbound_ports
            .iter()
            .chain(&self.skip_inbound_ports);
        if let Some(r) = ranges.find(|r| r.first == 0 || r.first > r.last) {
            return Err(format!("`{r}` is not a port range"));
        }
        if self.outbound_port.is_some() && self.proxy_uid.is_none() {
            return Err(
                "`--outbound-port` needs `--proxy-uid`: without it the proxy's own \
                        connections would be redirected back to the proxy"
                    .into(),
            );
        }
        if self.outbound_port.is_none() && !self.skip_outbound_ports.is_empty() {
            return Err("`--skip-outbound-ports` needs `--outbound-port`".into());
        }
        if self.inbound.is_empty() && !self.skip_inbound_ports.is_empty() {
            return Err("`--skip-inbound-ports` needs `--inbound`".into());
        }
        for (i, r) in self.inbound.iter().enumerate() {
            if self
                .inbound
                .get(..i)
                .unwrap_or_default()
                .iter()
                .any(|o| o.port == r.port)
            {
                return Err(format!("port `{}` is given twice in `--inbound`", r.port));
            }
            if let Some(skip) = self.skip_inbound_ports.iter().find(|s| s.contains(r.port)) {
                return Err(format!(
                    "port `{}` is both redirected (`--inbound {}={}`) and skipped \
                     (`--skip-inbound-ports {}`)",
                    r.port,
                    r.port,
                    r.proxy_port,
                    skip.to_string().replace(':', "-")
                ));
            }
        }
        Ok(())
    }
}

/// The address family a ruleset is written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// IPv4: `iptables-restore`; loopback is `127.0.0.0/8`.
    V4,
    /// IPv6: `ip6tables-restore`; loopback is `::1/128`.
    V6,
}

impl Family {
    fn loopback(self) -> &'static str {
        match self {
            Family::V4 => "127.0.0.0/8",
            Family::V6 => "::1/128",
        }
    }

    /// The `restore` and `save` commands for this family.
    fn commands(self, legacy: bool) -> (&'static str, &'static str) {
        match (self, legacy) {
            (Family::V4, false) => ("iptables-restore", "iptables-save"),
            (Family::V4, true) => ("iptables-legacy-restore", "iptables-legacy-save"),
            (Family::V6, false) => ("ip6tables-restore", "ip6tables-save"),
            (Family::V6, true) => ("ip6tables-legacy-restore", "ip6tables-legacy-save"),
        }
    }
}

/// The `iptables-restore --noflush` input for `opts` (IPv4), jumps included.
pub fn rules(opts: &InitOptions) -> String {
    ruleset(opts, Family::V4, "")
}

/// The `restore --noflush` input for `opts` and `family`; `existing` is the
/// output of `iptables-save -t nat`, and a jump already in it is not added
/// again.
pub fn ruleset(opts: &InitOptions, family: Family, existing: &str) -> String {
    let restore = family.commands(false).0;
    let mut lines = vec![
        format!("# Written by `sluice init`: apply with `{restore} --noflush`."),
        "*nat".to_owned(),
    ];
    for chain in [PREROUTING_CHAIN, OUTPUT_CHAIN] {
        // Declaring a chain that exists flushes it; `-F` says so explicitly.
        lines.push(format!(":{chain} - [0:0]"));
        lines.push(format!("-F {chain}"));
    }
    for skip in &opts.skip_inbound_ports {
        lines.push(format!(
            "-A {PREROUTING_CHAIN} -p tcp -m tcp --dport {skip} -j RETURN"
        ));
    }
    for r in &opts.inbound {
        lines.push(format!(
            "-A {PREROUTING_CHAIN} -p tcp -m tcp --dport {} -j REDIRECT --to-ports {}",
            r.port, r.proxy_port
        ));
    }
    if let Some(outbound) = opts.outbound_port {
        if let Some(uid) = opts.proxy_uid {
            lines.push(format!(
                "-A {OUTPUT_CHAIN} -m owner --uid-owner {uid} -j RETURN"
            ));
        }
        lines.push(format!(
            "-A {OUTPUT_CHAIN} -d {} -j RETURN",
            family.loopback()
        ));
        for skip in &opts.skip_outbound_ports {
            lines.push(format!(
                "-A {OUTPUT_CHAIN} -p tcp -m tcp --dport {skip} -j RETURN"
            ));
        }
        lines.push(format!(
            "-A {OUTPUT_CHAIN} -p tcp -j REDIRECT --to-ports {outbound}"
        ));
    }
    for jump in jumps() {
        if !existing.lines().any(|l| l.trim() == jump) {
            lines.push(jump);
        }
    }
    lines.push("COMMIT".to_owned());
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

fn jumps() -> [String; 2] {
    [
        format!("-A PREROUTING -j {PREROUTING_CHAIN}"),
        format!("-A OUTPUT -j {OUTPUT_CHAIN}"),
    ]
}

/// Runs `sluice init`.
pub fn run(args: &InitArgs, io: &mut Io<'_>) -> io::Result<u8> {
    let opts = match InitOptions::from_args(args) {
        Ok(o) => o,
        Err(message) => return super::io_failure(io, message),
    };
    let families: &[Family] = if args.ipv6 {
        &[Family::V4, Family::V6]
    } else {
        &[Family::V4]
    };
    if args.print {
        for &family in families {
            write!(io.out, "{}", ruleset(&opts, family, ""))?;
        }
        return Ok(EXIT_OK);
    }
    for &family in families {
        if let Err(message) = apply(&opts, family, args.legacy) {
            writeln!(io.err, "error: {message}")?;
            return Ok(EXIT_FAILED);
        }
    }
    writeln!(io.out, "{}", summary(&opts, families))?;
    Ok(EXIT_OK)
}

/// Pipes the ruleset into `restore --noflush`, jumps only where missing.
fn apply(opts: &InitOptions, family: Family, legacy: bool) -> Result<(), String> {
    let (restore, save) = family.commands(legacy);
    // A table that cannot be listed yet has no jumps: the restore reports
    // any real problem.
    let existing = Command::new(save)
        .args(["-t", "nat"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let input = ruleset(opts, family, &existing);
    let mut child = Command::new(restore)
        .arg("--noflush")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            let hint = if e.kind() == io::ErrorKind::NotFound {
                " (is iptables installed?)"
            } else {
                ""
            };
            format!("cannot run `{restore}`: {e}{hint}")
        })?;
    let written = child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(input.as_bytes()));
    let output = child
        .wait_with_output()
        .map_err(|e| format!("cannot run `{restore}`: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stderr = stderr.trim();
        let stderr = if stderr.is_empty() {
            "no message"
        } else {
            stderr
        };
        return Err(format!(
            "`{restore} --noflush` failed ({}): {stderr}",
            output.status
        ));
    }
    if let Some(Err(e)) = written {
        return Err(format!("cannot write to `{restore}`: {e}"));
    }
    Ok(())
}

/// One line saying what now happens to the workload's traffic.
fn summary(opts: &InitOptions, families: &[Family]) -> String {
    let mut parts = Vec::new();
    if let Some(outbound) = opts.outbound_port {
        let mut except = vec![
            format!("uid {}", opts.proxy_uid.unwrap_or_default()),
            "loopback".to_owned(),
        ];
        except.extend(
            opts.skip_outbound_ports
                .iter()
                .map(|r| format!("port {}", r.to_string().replace(':', "-"))),
        );
        parts.push(format!(
            "outgoing TCP → port {outbound} (except {})",
            except.join(", ")
        ));
    }
    for r in &opts.inbound {
        parts.push(format!(
            "incoming TCP port {} → port {}",
            r.port, r.proxy_port
        ));
    }
    let family = if families.contains(&Family::V6) {
        "IPv4 and IPv6"
    } else {
        "IPv4"
    };
    format!(
        "redirected {}; chains `{PREROUTING_CHAIN}` and `{OUTPUT_CHAIN}` of the nat table ({family})",
        parts.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linkerd_like() -> InitOptions {
        InitOptions {
            outbound_port: Some(4140),
            inbound: vec![InboundRedirect::parse("8080=4143").unwrap()],
            proxy_uid: Some(2102),
            skip_outbound_ports: vec![
                PortRange::parse("9990").unwrap(),
                PortRange::parse("8000-8099").unwrap(),
            ],
            skip_inbound_ports: vec![PortRange::parse("4191").unwrap()],
        }
    }

    #[test]
    fn full_ruleset() {
        let opts = linkerd_like();
        opts.check().unwrap();
        assert_eq!(
            rules(&opts),
            "# Written by `sluice init`: apply with `iptables-restore --noflush`.
*nat
:SLUICE_PREROUTING - [0:0]
-F SLUICE_PREROUTING
:SLUICE_OUTPUT - [0:0]
-F SLUICE_OUTPUT
-A SLUICE_PREROUTING -p tcp -m tcp --dport 4191 -j RETURN
-A SLUICE_PREROUTING -p tcp -m tcp --dport 8080 -j REDIRECT --to-ports 4143
-A SLUICE_OUTPUT -m owner --uid-owner 2102 -j RETURN
-A SLUICE_OUTPUT -d 127.0.0.0/8 -j RETURN
-A SLUICE_OUTPUT -p tcp -m tcp --dport 9990 -j RETURN
-A SLUICE_OUTPUT -p tcp -m tcp --dport 8000:8099 -j RETURN
-A SLUICE_OUTPUT -p tcp -j REDIRECT --to-ports 4140
-A PREROUTING -j SLUICE_PREROUTING
-A OUTPUT -j SLUICE_OUTPUT
COMMIT
"
        );
    }

    #[test]
    fn ipv6_uses_its_loopback() {
        let text = ruleset(&linkerd_like(), Family::V6, "");
        assert!(text.contains("-A SLUICE_OUTPUT -d ::1/128 -j RETURN\n"));
        assert!(!text.contains("127.0.0.0/8"));
        assert!(text.starts_with(
            "# Written by `sluice init`: apply with `ip6tables-restore --noflush`.\n"
        ));
    }

    #[test]
    fn existing_jumps_are_not_added_again() {
        let saved = "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
                     -A PREROUTING -j SLUICE_PREROUTING\n-A OUTPUT -j SLUICE_OUTPUT\nCOMMIT\n";
        let text = ruleset(&linkerd_like(), Family::V4, saved);
        assert!(!text.contains("-A OUTPUT -j"));
        assert!(!text.contains("-A PREROUTING -j"));
        assert!(text.contains("-F SLUICE_OUTPUT\n"));
        let one = "-A OUTPUT -j SLUICE_OUTPUT\n";
        let text = ruleset(&linkerd_like(), Family::V4, one);
        assert!(!text.contains("-A OUTPUT -j"));
        assert!(text.contains("-A PREROUTING -j SLUICE_PREROUTING\n"));
        // A jump with other matches is not ours.
        let other = "-A OUTPUT -p tcp -j SLUICE_OUTPUT\n";
        assert!(
            ruleset(&linkerd_like(), Family::V4, other).contains("-A OUTPUT -j SLUICE_OUTPUT\n")
        );
    }

    #[test]
    fn outbound_only_and_inbound_only() {
        let opts = InitOptions {
            outbound_port: Some(4140),
            proxy_uid: Some(0),
            ..InitOptions::default()
        };
        opts.check().unwrap();
        let text = rules(&opts);
        assert!(!text.contains("-A SLUICE_PREROUTING"));
        assert!(text.contains("-A SLUICE_OUTPUT -m owner --uid-owner 0 -j RETURN\n"));
        assert!(text.ends_with(
            "-A SLUICE_OUTPUT -p tcp -j REDIRECT --to-ports 4140\n\
                                -A PREROUTING -j SLUICE_PREROUTING\n\
                                -A OUTPUT -j SLUICE_OUTPUT\nCOMMIT\n"
        ));

        let opts = InitOptions {
            inbound: vec![
                InboundRedirect {
                    port: 80,
                    proxy_port: 4143,
                },
                InboundRedirect {
                    port: 9090,
                    proxy_port: 4144,
                },
            ],
            ..InitOptions::default()
        };
        opts.check().unwrap();
        let text = rules(&opts);
        // The output chain is still declared (and so emptied by a re-run).
        assert!(text.contains(":SLUICE_OUTPUT - [0:0]\n-F SLUICE_OUTPUT\n"));
        assert!(!text.contains("-A SLUICE_OUTPUT"));
        assert!(text.contains("--dport 80 -j REDIRECT --to-ports 4143\n"));
        assert!(text.contains("--dport 9090 -j REDIRECT --to-ports 4144\n"));
    }

    #[test]
    fn bad_values() {
        assert_eq!(port("0").unwrap_err(), "`0` is not a port (1 to 65535)");
        assert_eq!(
            port("65536").unwrap_err(),
            "`65536` is not a port (1 to 65535)"
        );
        assert_eq!(port("").unwrap_err(), "`` is not a port (1 to 65535)");
        assert_eq!(port(" 80 ").unwrap(), 80);
        for (text, error) in [
            ("", "an empty port in the list"),
            (
                "90-80",
                "`90-80` is not a port range: `90` is larger than `80`",
            ),
            ("0-80", "`0` is not a port (1 to 65535)"),
        ] {
            assert_eq!(PortRange::parse(text).unwrap_err(), error, "{text}");
        }
        assert_eq!(
            PortRange::parse("80-80").unwrap(),
            PortRange {
                first: 80,
                last: 80
            }
        );
        assert_eq!(PortRange::parse("1-65535").unwrap().to_string(), "1:65535");
        for (text, error) in [
            ("8080", "`8080` is not `PORT=PROXYPORT`, e.g. `8080=4143`"),
            ("8080=0", "`0` is not a port (1 to 65535)"),
            ("80=80", "`80=80` redirects a port to itself"),
        ] {
            assert_eq!(InboundRedirect::parse(text).unwrap_err(), error, "{text}");
        }
    }

    #[test]
    fn bad_combinations() {
        let err = |opts: InitOptions| opts.check().unwrap_err();
        assert_eq!(
            err(InitOptions::default()),
            "nothing to redirect: give `--outbound-port`, `--inbound` or both"
        );
        assert!(err(InitOptions {
            outbound_port: Some(4140),
            ..InitOptions::default()
        })
        .starts_with("`--outbound-port` needs `--proxy-uid`"));
        assert_eq!(
            err(InitOptions {
                outbound_port: Some(0),
                proxy_uid: Some(1),
                ..InitOptions::default()
            }),
            "`0` is not a port (1 to 65535)"
        );
        let inbound = vec![InboundRedirect {
            port: 80,
            proxy_port: 4143,
        }];
        assert_eq!(
            err(InitOptions {
                inbound: inbound.clone(),
                skip_outbound_ports: vec![PortRange { first: 1, last: 1 }],
                ..InitOptions::default()
            }),
            "`--skip-outbound-ports` needs `--outbound-port`"
        );
        assert_eq!(
            err(InitOptions {
                outbound_port: Some(4140),
                proxy_uid: Some(1),
                skip_inbound_ports: vec![PortRange { first: 1, last: 1 }],
                ..InitOptions::default()
            }),
            "`--skip-inbound-ports` needs `--inbound`"
        );
        assert_eq!(
            err(InitOptions {
                inbound: vec![
                    inbound[0],
                    InboundRedirect {
                        port: 80,
                        proxy_port: 4144
                    }
                ],
                ..InitOptions::default()
            }),
            "port `80` is given twice in `--inbound`"
        );
        assert_eq!(
            err(InitOptions {
                inbound,
                skip_inbound_ports: vec![PortRange { first: 1, last: 100 }],
                ..InitOptions::default()
            }),
            "port `80` is both redirected (`--inbound 80=4143`) and skipped (`--skip-inbound-ports 1-100`)"
        );
    }

    #[test]
    fn summary_line() {
        assert_eq!(
            summary(&linkerd_like(), &[Family::V4]),
            "redirected outgoing TCP → port 4140 (except uid 2102, loopback, port 9990, port 8000-8099); \
             incoming TCP port 8080 → port 4143; chains `SLUICE_PREROUTING` and `SLUICE_OUTPUT` of the nat table (IPv4)"
        );
    }
}
