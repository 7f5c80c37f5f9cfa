//! `sluice identity ca|issue`: development SPIFFE identities (ECDSA P-256),
//! so the proxy can run with mTLS with nothing prepared by hand.
//!
//! `ca` writes `DIR/ca.pem`, a self-signed CA with the URI SAN
//! `spiffe://<trust domain>` (as SPIRE CAs have), and `DIR/ca.key`. `issue`
//! writes `PREFIX.pem` and `PREFIX.key`: an X.509-SVID (one URI SAN, not a CA,
//! digitalSignature, clientAuth and serverAuth), checked with the proxy's
//! verifier before it is written. Exit 2: bad arguments, an existing CA key,
//! a file that cannot be read or written; exit 1: a CA that cannot sign.

use crate::args::{IdentityArgs, IdentityCaArgs, IdentityCommand, IdentityIssueArgs};
use crate::{Io, EXIT_FAILED, EXIT_IO, EXIT_OK};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
};
use sluice_identity::files::read_certs;
use sluice_identity::{verify_svid, IdentityError, TrustBundles, UnixTime, Usage};
use sluice_runtime::peer::is_valid_spiffe_id;
use sluice_runtime::SpiffeId;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use x509_parser::extensions::GeneralName;

const DAY: Duration = Duration::from_secs(24 * 3600);
/// Certificates start a minute in the past, for clocks slightly behind.
const BACKDATE: Duration = Duration::from_secs(60);

/// Runs `sluice identity`.
pub fn run(args: &IdentityArgs, io: &mut Io<'_>) -> io::Result<u8> {
    let result = match &args.command {
        IdentityCommand::Ca(a) => ca(a),
        IdentityCommand::Issue(a) => issue(a),
    };
    match result {
        Ok(message) => {
            writeln!(io.out, "{message}")?;
            Ok(EXIT_OK)
        }
        Err((status, message)) => {
            writeln!(io.err, "error: {message}")?;
            Ok(status)
        }
    }
}

/// A trust domain name as `--trust-domain` takes it.
pub fn check_trust_domain(s: &str) -> Result<&str, String> {
    if s.contains('/') || !is_valid_spiffe_id(&format!("spiffe://{s}")) {
        return Err(format!(
            "`{s}` is not a trust domain name (lowercase letters, digits, `.`, `-`, `_`)"
        ));
    }
    Ok(s)
}

/// A SPIFFE ID with a path, as `--id` takes it.
pub fn check_workload_id(s: &str) -> Result<&str, String> {
    let Ok(id) = SpiffeId::parse(s) else {
        return Err(format!("`{s}` is not a valid SPIFFE ID"));
    };
    if id.path().is_empty() {
        return Err(format!(
            "`{s}` names the trust domain itself; an SVID needs a path, e.g. `{s}/ns/default/sa/web`"
        ));
    }
    Ok(s)
}

type Failure = (u8, String);

fn usage(message: String) -> Failure {
    (EXIT_IO, message)
}

fn failed(message: String) -> Failure {
    (EXIT_FAILED, message)
}

fn ca(args: &IdentityCaArgs) -> Result<String, Failure> {
    let td = check_trust_domain(&args.trust_domain).map_err(usage)?;
    let cert_path = args.out.join("ca.pem");
    let key_path = args.out.join("ca.key");
    if key_path.exists() && !args.force {
        return Err(usage(format!(
            "`{}` already exists; pass `--force` to replace the CA (SVIDs it signed stop verifying)",
            key_path.display()
        )));
    }
    std::fs::create_dir_all(&args.out).map_err(|e| {
        usage(format!(
            "cannot create the directory `{}`: {e}",
            args.out.display()
        ))
    })?;
    let key = new_key()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Sluice development CA");
    dn.push(DnType::CommonName, td);
    params.distinguished_name = dn;
    params.subject_alt_names = vec![uri(&format!("spiffe://{td}"))?];
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = SystemTime::now();
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + DAY * args.days).into();
    let cert = params
        .self_signed(&key)
        .map_err(|e| failed(format!("cannot sign the CA certificate: {e}")))?;
    write_file(&key_path, key.serialize_pem().as_bytes(), true)?;
    write_file(&cert_path, cert.pem().as_bytes(), false)?;
    Ok(format!(
        "wrote {} and {}: CA of trust domain `{td}`, valid for {} days; {} is the trust bundle",
        cert_path.display(),
        key_path.display(),
        args.days,
        cert_path.display(),
    ))
}

/// A CA read from `DIR/ca.pem` and `DIR/ca.key`.
struct Ca {
    trust_domain: String,
    bundles: TrustBundles,
    not_after: SystemTime,
    issuer: Issuer<'static, KeyPair>,
}

fn issue(args: &IdentityIssueArgs) -> Result<String, Failure> {
    let id = check_workload_id(&args.id).map_err(usage)?;
    let ca = read_ca(&args.ca)?;
    // `check_workload_id` gave a valid SPIFFE ID.
    let trust_domain = SpiffeId::parse(id).map_or("", |id| id.trust_domain());
    if trust_domain != ca.trust_domain {
        return Err(usage(format!(
            "`{id}` is not in the trust domain `{}` of the CA in `{}`",
            ca.trust_domain,
            args.ca.display()
        )));
    }
    let now = SystemTime::now();
    if ca.not_after <= now {
        return Err(failed(format!(
            "the CA in `{}` has expired",
            args.ca.display()
        )));
    }
    let not_after = (now + DAY * args.days).min(ca.not_after);
    let key = new_key()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Sluice development SVID");
    params.distinguished_name = dn;
    params.subject_alt_names = vec![uri(id)?];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.not_before = (now - BACKDATE).into();
    params.not_after = not_after.into();
    params.use_authority_key_identifier_extension = true;
    let cert = params
        .signed_by(&key, &ca.issuer)
        .map_err(|e| failed(format!("cannot sign the SVID: {e}")))?;
    for usage in [Usage::Client, Usage::Server] {
        let chain = [cert.der().clone()];
        verify_svid(&chain, &ca.bundles, UnixTime::now(), usage).map_err(|e| {
            failed(format!(
                "the issued SVID does not verify ({e}); nothing was written"
            ))
        })?;
    }
    let cert_path = with_extension(&args.out, "pem");
    let key_path = with_extension(&args.out, "key");
    if let Some(dir) = cert_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            usage(format!(
                "cannot create the directory `{}`: {e}",
                dir.display()
            ))
        })?;
    }
    write_file(&key_path, key.serialize_pem().as_bytes(), true)?;
    write_file(&cert_path, cert.pem().as_bytes(), false)?;
    let hours = not_after
        .duration_since(now)
        .unwrap_or_default()
        .as_secs()
        .div_ceil(3600);
    Ok(format!(
        "wrote {} and {}: SVID of `{id}`, valid for {hours} hours",
        cert_path.display(),
        key_path.display(),
    ))
}

fn read_ca(dir: &Path) -> Result<Ca, Failure> {
    let cert_path = dir.join("ca.pem");
    let key_path = dir.join("ca.key");
    let cert = read_certs(&cert_path)
        .map_err(|e| match e {
            IdentityError::Read { .. } => usage(e.to_string()),
            e => failed(e.to_string()),
        })?
        .swap_remove(0);
    let not_a_ca = |why: &str| {
        failed(format!(
            "`{}` is not a CA from `sluice identity ca`: {why}",
            cert_path.display()
        ))
    };
    let parsed = match x509_parser::parse_x509_certificate(&cert) {
        Ok((_, parsed)) => parsed,
        Err(e) => return Err(not_a_ca(&e.to_string())),
    };
    if !parsed.is_ca() {
        return Err(not_a_ca("it is not a CA certificate"));
    }
    let uris: Vec<&str> = match parsed.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::URI(u) => Some(*u),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let trust_domain = match uris.as_slice() {
        [uri] => uri
            .strip_prefix("spiffe://")
            .filter(|td| check_trust_domain(td).is_ok())
            .ok_or_else(|| {
                not_a_ca(&format!(
                    "its URI SAN `{uri}` is not `spiffe://<trust domain>`"
                ))
            })?,
        _ => return Err(not_a_ca("it needs one URI SAN `spiffe://<trust domain>`")),
    };
    let not_after = u64::try_from(parsed.validity().not_after.timestamp())
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
        .unwrap_or(UNIX_EPOCH);
    let key_pem = std::fs::read_to_string(&key_path)
        .map_err(|e| usage(format!("cannot read `{}`: {e}", key_path.display())))?;
    let key = KeyPair::from_pem(&key_pem).map_err(|e| {
        failed(format!(
            "`{}` holds no usable PKCS#8 private key: {e}",
            key_path.display()
        ))
    })?;
    if key.der_bytes() != parsed.public_key().subject_public_key.data.as_ref() {
        return Err(failed(format!(
            "`{}` is not the key of `{}`",
            key_path.display(),
            cert_path.display()
        )));
    }
    let issuer = Issuer::from_ca_cert_der(&cert, key).map_err(|e| not_a_ca(&e.to_string()))?;
    let mut bundles = TrustBundles::new();
    bundles
        .insert(trust_domain, vec![cert.clone()])
        .map_err(|e| failed(e.to_string()))?;
    Ok(Ca {
        trust_domain: trust_domain.to_owned(),
        bundles,
        not_after,
        issuer,
    })
}

fn new_key() -> Result<KeyPair, Failure> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| failed(format!("cannot generate a key: {e}")))
}

fn uri(s: &str) -> Result<SanType, Failure> {
    s.try_into()
        .map(SanType::URI)
        .map_err(|e| usage(format!("`{s}` cannot be a URI SAN: {e}")))
}

/// `PREFIX.ext`, keeping any dot already in the prefix (`web.v2` gives `web.v2.pem`).
fn with_extension(prefix: &Path, ext: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(".");
    name.push(ext);
    PathBuf::from(name)
}

/// Writes through a temporary file and a rename, so a watcher never reads
/// half a file; `secret` files are readable by their owner only.
fn write_file(path: &Path, bytes: &[u8], secret: bool) -> Result<(), Failure> {
    let tmp = with_extension(path, &format!("tmp{}", std::process::id()));
    let result = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        if secret {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        #[cfg(not(unix))]
        let _ = secret;
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        usage(format!("cannot write `{}`: {e}", path.display()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Cli;
    use clap::Parser;
    use sluice_identity::files::FileIdentity;
    use sluice_identity::Credentials;
    use std::collections::BTreeMap;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir = std::env::temp_dir()
                .join(format!("sluice-cli-identity-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Runs `sluice ARGS`; returns the status, stdout and stderr.
    fn sluice(args: &[&str]) -> (u8, String, String) {
        let cli = match Cli::try_parse_from(std::iter::once("sluice").chain(args.iter().copied())) {
            Ok(cli) => cli,
            Err(e) => return (EXIT_IO, String::new(), e.to_string()),
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut stdin = io::empty();
        let mut io = Io {
            stdin: &mut stdin,
            out: &mut out,
            err: &mut err,
        };
        let status = crate::run(cli, &mut io).unwrap();
        let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
        (status, text(out), text(err))
    }

    fn s(p: &Path) -> &str {
        p.to_str().unwrap()
    }

    #[test]
    fn issued_svids_verify_against_the_ca() {
        let dir = TempDir::new("ok");
        let certs = dir.0.join("certs");
        let (status, out, err) = sluice(&[
            "identity",
            "ca",
            "--trust-domain",
            "example.org",
            "--out",
            s(&certs),
        ]);
        assert_eq!(status, EXIT_OK, "{err}");
        assert!(
            out.contains("CA of trust domain `example.org`, valid for 365 days"),
            "{out}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(certs.join("ca.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let id = "spiffe://example.org/ns/default/sa/web";
        let web = certs.join("sub").join("web");
        let (status, out, err) = sluice(&[
            "identity",
            "issue",
            "--ca",
            s(&certs),
            "--id",
            id,
            "--out",
            s(&web),
            "--days",
            "2",
        ]);
        assert_eq!(status, EXIT_OK, "{err}");
        assert!(
            out.ends_with(&format!("SVID of `{id}`, valid for 48 hours\n")),
            "{out}"
        );

        let files = FileIdentity {
            cert: certs.join("sub/web.pem"),
            key: certs.join("sub/web.key"),
            trust_bundles: BTreeMap::from([("example.org".to_owned(), certs.join("ca.pem"))]),
        };
        let creds: Credentials = files.load_credentials().unwrap();
        assert_eq!(creds.spiffe_id(), id);
        let bundles = files.load_trust_bundles().unwrap();
        for usage in [Usage::Client, Usage::Server] {
            let verified = verify_svid(creds.chain(), &bundles, UnixTime::now(), usage);
            assert_eq!(verified.unwrap(), id);
        }
    }

    #[test]
    fn refusals() {
        let dir = TempDir::new("refusals");
        let certs = dir.0.join("certs");
        let ca_args = [
            "identity",
            "ca",
            "--trust-domain",
            "example.org",
            "--out",
            s(&certs),
        ];
        assert_eq!(sluice(&ca_args).0, EXIT_OK);
        let (status, _, err) = sluice(&ca_args);
        assert_eq!(status, EXIT_IO);
        assert!(err.contains("already exists; pass `--force`"), "{err}");
        let mut forced = ca_args.to_vec();
        forced.push("--force");
        assert_eq!(sluice(&forced).0, EXIT_OK);

        let issue = |id: &str| {
            let out = dir.0.join("web");
            sluice(&[
                "identity",
                "issue",
                "--ca",
                s(&certs),
                "--id",
                id,
                "--out",
                s(&out),
            ])
        };
        let (status, _, err) = issue("spiffe://other.org/ns/a/sa/b");
        assert_eq!(status, EXIT_IO);
        assert!(
            err.contains("`spiffe://other.org/ns/a/sa/b` is not in the trust domain `example.org`"),
            "{err}"
        );
        for bad in [
            "https://example.org/a",
            "spiffe://example.org/a//b",
            "spiffe://example.org",
        ] {
            let (status, _, err) = issue(bad);
            assert_eq!(status, EXIT_IO, "{bad}");
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
        // X509-SVID: a leaf SVID's ID has a path.
        let (_, _, err) = issue("spiffe://example.org");
        assert!(err.contains("an SVID needs a path"), "{err}");
        assert!(!dir.0.join("web.pem").exists());
        let (status, _, _) = sluice(&[
            "identity",
            "ca",
            "--trust-domain",
            "Example.org",
            "--out",
            "x",
        ]);
        assert_eq!(status, EXIT_IO);

        let (status, _, err) = sluice(&[
            "identity",
            "issue",
            "--ca",
            s(&dir.0),
            "--id",
            "spiffe://example.org/a",
            "--out",
            "x",
        ]);
        assert_eq!(status, EXIT_IO);
        assert!(err.contains("cannot read"), "{err}");

        // A key that is not the CA's.
        let other = dir.0.join("other");
        let other_args = [
            "identity",
            "ca",
            "--trust-domain",
            "example.org",
            "--out",
            s(&other),
        ];
        assert_eq!(sluice(&other_args).0, EXIT_OK);
        std::fs::copy(other.join("ca.key"), certs.join("ca.key")).unwrap();
        let (status, _, err) = issue("spiffe://example.org/a");
        assert_eq!(status, EXIT_FAILED);
        assert!(err.contains("is not the key of"), "{err}");
    }
}
