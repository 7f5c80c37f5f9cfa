//! SVID verification, PEM files, and real TLS handshakes over 127.0.0.1.

use super::files::FileIdentity;
use super::*;
use crate::test_certs::{self, client_config, Ca, Flaw, Svid};
use rustls_pki_types::{PrivateKeyDer, PrivateSec1KeyDer};
use std::collections::BTreeMap;
use std::path::PathBuf;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const SERVER: &str = "spiffe://a.org/ns/mesh/sa/proxy";
const CLIENT: &str = "spiffe://a.org/ns/foo/sa/web";

fn bundles(cas: &[&Ca]) -> TrustBundles {
    let mut b = TrustBundles::new();
    for ca in cas {
        b.insert(&ca.trust_domain, ca.bundle()).unwrap();
    }
    b
}

fn verify(svid: &Svid, b: &TrustBundles, usage: Usage) -> Result<String, IdentityError> {
    verify_svid(&svid.chain, b, UnixTime::now(), usage)
}

#[test]
fn valid_svids_verify() {
    let a = Ca::new("a.org");
    let b = bundles(&[&a]);
    assert_eq!(verify(&a.svid(CLIENT), &b, Usage::Client).unwrap(), CLIENT);
    assert_eq!(verify(&a.svid(CLIENT), &b, Usage::Server).unwrap(), CLIENT);
    let inter = a.intermediate().intermediate();
    let svid = inter.svid(CLIENT);
    assert_eq!(svid.chain.len(), 3);
    assert_eq!(verify(&svid, &b, Usage::Client).unwrap(), CLIENT);
    let leaf_only = verify_svid(&svid.chain[..1], &b, UnixTime::now(), Usage::Client);
    assert!(
        matches!(leaf_only, Err(IdentityError::Untrusted { .. })),
        "{leaf_only:?}"
    );
}

#[test]
fn each_flaw_is_rejected() {
    let a = Ca::new("a.org");
    let b = bundles(&[&a]);
    let check = |flaw, usage| verify(&a.svid_with(CLIENT, flaw), &b, usage);
    use IdentityError as E;
    assert!(matches!(check(Flaw::Expired, Usage::Client), Err(E::Expired(id)) if id == CLIENT));
    assert!(matches!(
        check(Flaw::NotYetValid, Usage::Client),
        Err(E::NotYetValid(_))
    ));
    assert!(matches!(
        check(Flaw::TwoUriSans, Usage::Client),
        Err(E::UriSanCount(2))
    ));
    assert!(matches!(
        check(Flaw::NoUriSan, Usage::Client),
        Err(E::UriSanCount(0))
    ));
    assert!(matches!(
        check(Flaw::NonSpiffeUri, Usage::Client),
        Err(E::InvalidSpiffeId(id)) if id.starts_with("https://")
    ));
    assert!(matches!(
        check(Flaw::IsCa, Usage::Client),
        Err(E::LeafIsCa(_))
    ));
    for flaw in [
        Flaw::NoDigitalSignature,
        Flaw::NoKeyUsage,
        Flaw::KeyCertSign,
    ] {
        assert!(
            matches!(check(flaw, Usage::Client), Err(E::KeyUsage { .. })),
            "{flaw:?}"
        );
    }
    assert!(matches!(
        check(Flaw::NoClientAuth, Usage::Client),
        Err(E::ExtendedKeyUsage {
            usage: Usage::Client,
            ..
        })
    ));
    assert!(check(Flaw::NoClientAuth, Usage::Server).is_ok());
    assert!(matches!(
        check(Flaw::NoExtendedKeyUsage, Usage::Client),
        Err(E::ExtendedKeyUsage { .. })
    ));
    assert!(check(Flaw::NoExtendedKeyUsage, Usage::Server).is_ok());
    assert!(matches!(
        check(Flaw::NoServerAuth, Usage::Server),
        Err(E::ExtendedKeyUsage { .. })
    ));
    let ca_leaf = verify(&a.as_svid(), &b, Usage::Client);
    assert!(matches!(ca_leaf, Err(E::LeafIsCa(_))), "{ca_leaf:?}");
    assert!(matches!(
        verify_svid(&[], &b, UnixTime::now(), Usage::Client),
        Err(E::NoCertificate)
    ));
    let garbage = [CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00])];
    assert!(matches!(
        verify_svid(&garbage, &b, UnixTime::now(), Usage::Client),
        Err(E::Malformed(_))
    ));
}

#[test]
fn only_the_ids_trust_domain_bundle_counts() {
    let a = Ca::new("a.org");
    let partner = Ca::new("partner.net");
    let b = bundles(&[&a, &partner]);
    let forged = partner.svid(CLIENT);
    let e = verify(&forged, &b, Usage::Client).unwrap_err();
    assert!(matches!(&e, IdentityError::Untrusted { trust_domain, .. } if trust_domain == "a.org"));
    assert!(e.to_string().contains("`a.org`"), "{e}");
    let theirs = partner.svid("spiffe://partner.net/x");
    assert!(verify(&theirs, &b, Usage::Client).is_ok());
    let e = verify(
        &Ca::new("c.org").svid("spiffe://c.org/x"),
        &b,
        Usage::Client,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "no trust bundle for trust domain `c.org` of `spiffe://c.org/x`"
    );
}

#[test]
fn svid_ids_follow_the_path_rules() {
    // X509-SVID: a leaf's SPIFFE ID has a path, a signing certificate's has none.
    let a = Ca::new("a.org");
    let b = bundles(&[&a]);
    let bare = a.svid("spiffe://a.org");
    for usage in [Usage::Client, Usage::Server] {
        let e = verify(&bare, &b, usage).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the SVID of `spiffe://a.org` has no path: a leaf SVID needs one"
        );
    }
    let e = Credentials::from_der(bare.chain.clone(), bare.key()).unwrap_err();
    assert!(e.to_string().contains("has no path"), "{e}");

    let signing = a.intermediate_with_id("spiffe://a.org/ca/issuer");
    let svid = signing.svid(CLIENT);
    let expected = format!(
        "the SVID of `{CLIENT}` is signed by a certificate whose SPIFFE ID \
         `spiffe://a.org/ca/issuer` has a path"
    );
    for usage in [Usage::Client, Usage::Server] {
        let e = verify(&svid, &b, usage).unwrap_err();
        assert_eq!(e.to_string(), expected);
    }
    let e = Credentials::from_der(svid.chain.clone(), svid.key()).unwrap_err();
    assert_eq!(e.to_string(), expected);
    // Below a compliant intermediate, deeper in the chain.
    let deeper = signing.intermediate().svid(CLIENT);
    assert_eq!(deeper.chain.len(), 3);
    assert!(verify(&deeper, &b, Usage::Client).is_err());
    // A signing certificate's ID may name another trust domain.
    let unnamed = a.intermediate_with_id("spiffe://ca.a.org").svid(CLIENT);
    assert_eq!(verify(&unnamed, &b, Usage::Client).unwrap(), CLIENT);

    // A root with a path is no trust anchor.
    let rooted = Ca::new_with_id("r.org", "spiffe://r.org/root");
    let e = TrustBundles::new()
        .insert("r.org", rooted.bundle())
        .unwrap_err();
    assert!(
        e.to_string().contains("`spiffe://r.org/root` has a path"),
        "{e}"
    );
}

#[test]
fn trust_bundles_validate_their_input() {
    let a = Ca::new("a.org");
    let mut b = TrustBundles::new();
    assert!(b.is_empty());
    for bad in ["", "A.org", "a.org/x", "a.org:80"] {
        assert!(matches!(
            b.insert(bad, a.bundle()),
            Err(IdentityError::InvalidTrustDomain(_))
        ));
    }
    assert!(matches!(
        b.insert("a.org", vec![]),
        Err(IdentityError::EmptyBundle(_))
    ));
    let junk = vec![CertificateDer::from(vec![1, 2, 3])];
    assert!(matches!(
        b.insert("a.org", junk),
        Err(IdentityError::BadRoot { .. })
    ));
    b.insert("z.org", Ca::new("z.org").bundle()).unwrap();
    b.insert("a.org", a.bundle()).unwrap();
    assert_eq!(b.trust_domains().collect::<Vec<_>>(), ["a.org", "z.org"]);
    assert_eq!(b.roots("a.org").unwrap(), a.bundle().as_slice());
}

#[test]
fn credentials_check_the_leaf_and_key() {
    let a = Ca::new("a.org");
    let svid = a.svid(SERVER);
    let creds = Credentials::from_der(svid.chain.clone(), svid.key()).unwrap();
    assert_eq!(creds.spiffe_id(), SERVER);
    let left = creds
        .not_after()
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(
        left.as_secs() > 23 * 3600 && left.as_secs() <= 24 * 3600,
        "{left:?}"
    );
    let other = a.svid(SERVER);
    assert!(matches!(
        Credentials::from_der(svid.chain.clone(), other.key()),
        Err(IdentityError::KeyMismatch(_))
    ));
    let bad_key = PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(vec![1, 2, 3]));
    assert!(matches!(
        Credentials::from_der(svid.chain.clone(), bad_key),
        Err(IdentityError::BadKey(_))
    ));
    for flaw in [
        Flaw::Expired,
        Flaw::IsCa,
        Flaw::NoServerAuth,
        Flaw::TwoUriSans,
    ] {
        let s = a.svid_with(SERVER, flaw);
        assert!(
            Credentials::from_der(s.chain.clone(), s.key()).is_err(),
            "{flaw:?}"
        );
    }
    assert!(matches!(
        Credentials::from_der(vec![], svid.key()),
        Err(IdentityError::NoCertificate)
    ));
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("sluice-identity-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn files_load_pem() {
    let dir = TempDir::new("files");
    let a = Ca::new("a.org").intermediate();
    let svid = a.svid(SERVER);
    let (cert, key) = svid.write(&dir.0, "svid");
    let files = FileIdentity {
        cert: cert.clone(),
        key: key.clone(),
        trust_bundles: BTreeMap::from([("a.org".to_owned(), a.write_bundle(&dir.0, "a"))]),
    };
    assert_eq!(files.paths().len(), 3);
    let creds = files.load_credentials().unwrap();
    assert_eq!(creds.spiffe_id(), SERVER);
    assert_eq!(creds.chain().len(), 2);
    let b = files.load_trust_bundles().unwrap();
    assert_eq!(b.trust_domains().collect::<Vec<_>>(), ["a.org"]);
    assert!(verify_svid(creds.chain(), &b, UnixTime::now(), Usage::Server).is_ok());

    // The same key as SEC1 (`EC PRIVATE KEY`).
    let sec1 = pkcs8_to_sec1(svid.key().secret_der());
    std::fs::write(&key, pem("EC PRIVATE KEY", &sec1)).unwrap();
    assert_eq!(files.load_credentials().unwrap().spiffe_id(), SERVER);

    std::fs::write(&key, "nothing here\n").unwrap();
    let e = files.load_credentials().unwrap_err().to_string();
    assert!(
        e.ends_with("holds no PEM private key (PKCS#8, SEC1 or PKCS#1)"),
        "{e}"
    );
    std::fs::write(&cert, &svid.key_pem).unwrap();
    let e = files.load_credentials().unwrap_err().to_string();
    assert!(e.ends_with("holds no PEM certificate"), "{e}");
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
    let e = files.load_credentials().unwrap_err().to_string();
    assert!(
        e.ends_with("is not valid PEM: section end \"CERTIFICATE\" missing"),
        "{e}"
    );
    std::fs::remove_file(&cert).unwrap();
    let e = files.load_credentials().unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("cannot read `{}`", cert.display())),
        "{e}"
    );
    let bad_domain = FileIdentity {
        trust_bundles: BTreeMap::from([("A".to_owned(), dir.0.join("a.pem"))]),
        ..files
    };
    assert!(matches!(
        bad_domain.load_trust_bundles(),
        Err(IdentityError::InvalidTrustDomain(_))
    ));
}

/// The ECPrivateKey inside ring's PKCS#8 document.
fn pkcs8_to_sec1(der: &[u8]) -> Vec<u8> {
    fn tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
        let (tag, first) = (input[0], input[1]);
        let (len, start) = match first {
            n if n < 0x80 => (n as usize, 2),
            0x81 => (input[2] as usize, 3),
            _ => (((input[2] as usize) << 8) | input[3] as usize, 4),
        };
        (tag, &input[start..start + len], &input[start + len..])
    }
    let (_, info, _) = tlv(der);
    let (_, _, rest) = tlv(info); // version
    let (_, _, rest) = tlv(rest); // algorithm
    let (tag, key, _) = tlv(rest);
    assert_eq!(tag, 0x04);
    key.to_vec()
}

fn pem(label: &str, der: &[u8]) -> String {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::new();
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..4 {
            text.push(if i <= chunk.len() {
                B64[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in text.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out + &format!("-----END {label}-----\n")
}

/// A server on 127.0.0.1 with `store`'s config, accepting one connection per call.
struct Server {
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

/// What one connection gave: the server's handshake outcome (the client's
/// verified ID, or the error), the ALPN, and the server leaf the client saw.
struct Outcome {
    server: Result<Option<String>, String>,
    alpn: Option<Vec<u8>>,
    server_leaf: Option<CertificateDer<'static>>,
}

impl Server {
    async fn new(store: &Arc<IdentityStore>) -> Server {
        Server {
            listener: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            acceptor: tokio_rustls::TlsAcceptor::from(store.server_config()),
        }
    }

    async fn connect(&self, config: Arc<rustls::ClientConfig>) -> Outcome {
        let addr = self.listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut tls = test_certs::connect(addr, config).await.ok()?;
            let leaf = test_certs::server_leaf(&tls);
            let mut buf = Vec::new();
            // TLS 1.3: a rejected client certificate shows up on the first read.
            tls.read_to_end(&mut buf).await.ok()?;
            Some((leaf, buf))
        });
        let (tcp, _) = self.listener.accept().await.unwrap();
        let (server, alpn) = match self.acceptor.accept(tcp).await {
            Ok(mut tls) => {
                let id = peer_identity(tls.get_ref().1);
                let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                tls.write_all(b"ok").await.unwrap();
                tls.shutdown().await.unwrap();
                (Ok(id), alpn)
            }
            Err(e) => (Err(e.to_string()), None),
        };
        let seen = client.await.unwrap();
        if server.is_ok() {
            assert_eq!(seen.as_ref().map(|s| s.1.as_slice()), Some(&b"ok"[..]));
        } else {
            assert!(seen.is_none(), "the client did not notice the failure");
        }
        Outcome {
            server,
            alpn,
            server_leaf: seen.and_then(|s| s.0),
        }
    }
}

fn store_with(server_ca: &Ca, trusted: &[&Ca]) -> Arc<IdentityStore> {
    let store = IdentityStore::new();
    let svid = server_ca.svid(SERVER);
    store.set_credentials(Credentials::from_der(svid.chain.clone(), svid.key()).unwrap());
    store.set_trust_bundles(bundles(trusted));
    store
}

#[tokio::test]
async fn handshakes() {
    let a = Ca::new("a.org");
    let partner = Ca::new("partner.net");
    let store = store_with(&a, &[&a, &partner]);
    assert!(store.has_credentials() && store.has_trust_bundles());
    assert_eq!(store.spiffe_id().as_deref(), Some(SERVER));
    let server = Server::new(&store).await;

    let ok = server
        .connect(client_config(&a, Some(&a.svid(CLIENT)), &["h2"]))
        .await;
    assert_eq!(ok.server, Ok(Some(CLIENT.to_owned())));
    assert_eq!(ok.alpn.as_deref(), Some(&b"h2"[..]));
    let inter = a.intermediate();
    let ok = server
        .connect(client_config(&a, Some(&inter.svid(CLIENT)), &[]))
        .await;
    assert_eq!(ok.server, Ok(Some(CLIENT.to_owned())));
    assert_eq!(ok.alpn, None);
    let ok = server.connect(client_config(&a, None, &["http/1.1"])).await;
    assert_eq!(ok.server, Ok(None));
    assert_eq!(ok.alpn.as_deref(), Some(&b"http/1.1"[..]));

    let flaws = [
        Flaw::Expired,
        Flaw::NotYetValid,
        Flaw::TwoUriSans,
        Flaw::NonSpiffeUri,
        Flaw::NoUriSan,
        Flaw::IsCa,
        Flaw::NoDigitalSignature,
        Flaw::NoKeyUsage,
        Flaw::KeyCertSign,
        Flaw::NoClientAuth,
        Flaw::NoExtendedKeyUsage,
    ];
    let mut bad: Vec<(String, Svid)> = flaws
        .iter()
        .map(|f| (format!("{f:?}"), a.svid_with(CLIENT, *f)))
        .collect();
    bad.push(("CA as leaf".into(), a.as_svid()));
    bad.push(("partner CA naming a.org".into(), partner.svid(CLIENT)));
    bad.push((
        "unknown trust domain".into(),
        Ca::new("c.org").svid("spiffe://c.org/x"),
    ));
    for (what, svid) in &bad {
        let out = server.connect(client_config(&a, Some(svid), &["h2"])).await;
        assert!(out.server.is_err(), "{what}: accepted");
    }
    let out = server
        .connect(client_config(&a, Some(&partner.svid(CLIENT)), &[]))
        .await;
    let e = out.server.unwrap_err();
    assert!(
        e.contains("does not verify against the trust bundle of `a.org`"),
        "{e}"
    );
}

#[tokio::test]
async fn no_credentials_no_handshake() {
    let a = Ca::new("a.org");
    let store = IdentityStore::new();
    store.set_trust_bundles(bundles(&[&a]));
    assert!(!store.has_credentials() && store.svid_not_after().is_none());
    let server = Server::new(&store).await;
    assert!(server
        .connect(client_config(&a, None, &[]))
        .await
        .server
        .is_err());
}

#[tokio::test]
async fn rotation_needs_no_new_config() {
    let a = Ca::new("a.org");
    let b = Ca::new("b.org");
    let store = store_with(&a, &[&a, &b]);
    let server = Server::new(&store).await;
    let first = store.credentials().unwrap().chain()[0].clone();
    let out = server.connect(client_config(&a, None, &[])).await;
    assert_eq!(out.server_leaf.as_ref(), Some(&first));

    let next = a.svid(SERVER);
    store.set_credentials(Credentials::from_der(next.chain.clone(), next.key()).unwrap());
    let out = server.connect(client_config(&a, None, &[])).await;
    assert_eq!(out.server_leaf.as_ref(), Some(&next.chain[0]));
    assert_ne!(next.chain[0], first);

    let from_b = b.svid("spiffe://b.org/ns/x/sa/y");
    let out = server.connect(client_config(&a, Some(&from_b), &[])).await;
    assert_eq!(out.server, Ok(Some(from_b.id.clone())));
    store.set_trust_bundles(bundles(&[&a]));
    let out = server.connect(client_config(&a, Some(&from_b), &[])).await;
    assert!(out.server.is_err());
    let out = server
        .connect(client_config(&a, Some(&a.svid(CLIENT)), &[]))
        .await;
    assert_eq!(out.server, Ok(Some(CLIENT.to_owned())));
    store.set_trust_bundles(TrustBundles::new());
    assert!(!store.has_trust_bundles());
    let out = server
        .connect(client_config(&a, Some(&a.svid(CLIENT)), &[]))
        .await;
    assert!(out.server.is_err());
}
