//! The Fetcher over an HTTP source: an image layout written with
//! `sluice_fleet::layout::LayoutDir` and served by a real nginx on loopback
//! (sluice-testkit's `TestNginx`), counting its requests in nginx's access
//! log.

use sluice_fleet::artifact::{build, Artifact};
use sluice_fleet::fetch::{
    Content, FetchConfig, FetchError, FetchErrorKind, Fetched, Fetcher, Polled, Trust,
};
use sluice_fleet::keys::PrivateKey;
use sluice_fleet::layout::LayoutDir;
use sluice_fleet::signature;
use sluice_fleet::source::SourceRef;
use sluice_testkit::nginx::TestNginx;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A policy whose server listens on `port`: each port a different bundle.
fn policy(port: u16) -> String {
    format!(
        "mesh {{ trust-domain \"td\" }}\nserver web {{ port {port}  route api {{ method GET  path prefix \"/api\" }} }}\nallow a {{ to web.api  from authenticated }}\n"
    )
}

fn artifact(port: u16) -> Artifact {
    let text = policy(port);
    let (parsed, diags) = sluice_lang::parse::parse_str("p.sluice", &text);
    assert!(diags.is_empty(), "{diags:?}");
    let bundle = sluice_compiler::compile(&parsed, &sluice_compiler::Config::default())
        .expect("compiles")
        .bundle;
    build(&bundle, text.as_bytes(), None).unwrap()
}

/// Writes `artifact` into `layout` under `tag` (blobs, then the manifest
/// and `index.json`), signed by `key` when given. `index.json`'s mtime is
/// moved 10 s past its previous one: nginx's ETag is mtime seconds and
/// size, and a rewrite in the same second with the same size would keep it.
fn publish(layout: &LayoutDir, tag: &str, artifact: &Artifact, key: Option<&PrivateKey>) {
    let index = layout.root().join("index.json");
    let before = std::fs::metadata(&index).and_then(|m| m.modified()).ok();
    for blob in artifact.blobs() {
        layout.put_blob(&blob.bytes).unwrap();
    }
    layout.put_manifest(tag, &artifact.manifest_bytes).unwrap();
    if let Some(key) = key {
        let payload = signature::sign(key, &format!("payments:{tag}"), &artifact.digest).unwrap();
        let sig = signature::signature_manifest(std::slice::from_ref(&payload.descriptor));
        layout.put_blob(&payload.bytes).unwrap();
        layout.put_blob(&sig.config.bytes).unwrap();
        let sig_tag = signature::signature_tag(&artifact.digest).unwrap();
        layout.put_manifest(&sig_tag, &sig.manifest_bytes).unwrap();
    }
    if let Some(before) = before {
        std::fs::File::options()
            .write(true)
            .open(&index)
            .unwrap()
            .set_modified(before + Duration::from_secs(10))
            .unwrap();
    }
}

/// A web root with the layout folder `policies/payments` in it; removed on
/// drop.
struct Site {
    root: PathBuf,
    layout: LayoutDir,
}

impl Site {
    fn new() -> Site {
        static N: AtomicUsize = AtomicUsize::new(0);
        let root = std::env::temp_dir().join(format!(
            "sluice-http-source-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let layout = LayoutDir::new(root.join("policies/payments"));
        layout.init().unwrap();
        Site { root, layout }
    }

    fn blob_file(&self, digest: &str) -> PathBuf {
        self.layout.blob_path(digest).unwrap()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn fetcher(nginx: &TestNginx, reference: &str, trust: Trust) -> Fetcher {
    let source =
        SourceRef::parse(&format!("{}/policies/payments{reference}", nginx.url())).unwrap();
    let mut config = FetchConfig::new(trust);
    config.plain_http = true;
    Fetcher::new(source, config).unwrap()
}

fn fetched(polled: Result<Polled, FetchError>) -> Fetched {
    match polled {
        Ok(Polled::Fetched(f)) => *f,
        Ok(Polled::Unchanged) => panic!("unchanged, expected a fetch"),
        Err(e) => panic!("refused: {e} ({})", e.kind.as_str()),
    }
}

fn refused(polled: Result<Polled, FetchError>) -> FetchError {
    match polled {
        Ok(Polled::Fetched(f)) => panic!("fetched {}, expected a refusal", f.digest),
        Ok(Polled::Unchanged) => panic!("unchanged, expected a refusal"),
        Err(e) => e,
    }
}

/// The access log lines between two marks, without the marks.
fn between(before: &[String], after: &[String]) -> Vec<String> {
    after[before.len()..after.len() - 1].to_vec()
}

fn start(site: &Site, what: &str) -> Option<TestNginx> {
    TestNginx::start(what, &site.root)
}

#[tokio::test(flavor = "current_thread")]
async fn a_poll_costs_one_conditional_get_and_a_moved_tag_is_fetched() {
    let site = Site::new();
    let Some(nginx) = start(&site, "the HTTP source poll test") else {
        return;
    };
    let key = PrivateKey::generate().unwrap();
    let first = artifact(80);
    publish(&site.layout, "v1", &first, Some(&key));

    let mut fetcher = fetcher(&nginx, ":v1", Trust::Keys(vec![key.public_key()]));
    let got = fetched(fetcher.poll().await);
    assert_eq!(got.digest, first.digest);
    assert_eq!(got.signer, Some(key.public_key().key_id()));
    let Content::Bundle(verified) = &got.content else {
        panic!("no bundle");
    };
    assert_eq!(verified.bundle.as_bytes(), first.bundle.bytes.as_slice());
    fetcher.set_current(&got.digest);
    let hex = &first.bundle.descriptor.digest["sha256:".len()..];
    let log1 = nginx.mark();
    assert!(
        log1.iter()
            .any(|l| l.starts_with(&format!("GET /policies/payments/blobs/sha256/{hex} 200"))),
        "{log1:?}"
    );

    // Nothing changed: one conditional GET of index.json, answered 304.
    assert!(matches!(fetcher.poll().await, Ok(Polled::Unchanged)));
    let log2 = nginx.mark();
    assert_eq!(
        between(&log1, &log2),
        ["GET /policies/payments/index.json 304 0"]
    );

    // The tag moves to another signed artifact: fetched.
    let second = artifact(81);
    publish(&site.layout, "v1", &second, Some(&key));
    let got = fetched(fetcher.poll().await);
    assert_eq!(got.digest, second.digest);
    fetcher.set_current(&got.digest);
    let log3 = nginx.mark();
    let requests = between(&log2, &log3);
    assert!(
        requests[0].starts_with("GET /policies/payments/index.json 200 "),
        "{requests:?}"
    );
    assert!(matches!(fetcher.poll().await, Ok(Polled::Unchanged)));
    let log4 = nginx.mark();
    assert_eq!(
        between(&log3, &log4),
        ["GET /policies/payments/index.json 304 0"]
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_tampered_blob_is_refused_until_it_is_repaired() {
    let site = Site::new();
    let Some(nginx) = start(&site, "the HTTP source tamper test") else {
        return;
    };
    let key = PrivateKey::generate().unwrap();
    let a = artifact(80);
    publish(&site.layout, "v1", &a, Some(&key));
    // Same size, one byte changed: the server serves it under the old name.
    let file = site.blob_file(&a.bundle.descriptor.digest);
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();

    let mut fetcher = fetcher(&nginx, ":v1", Trust::Keys(vec![key.public_key()]));
    let e = refused(fetcher.poll().await);
    assert_eq!(e.kind, FetchErrorKind::Digest, "{e}");
    assert_eq!(e.digest.as_deref(), Some(a.digest.as_str()));
    assert!(e.message.contains(&a.bundle.descriptor.digest), "{e}");
    let log1 = nginx.mark();

    // Bytes that do not match their digest may be repaired on the server:
    // the next poll (index.json unchanged, 304) fetches again, is refused
    // again while the file is bad, and accepts it once it is repaired.
    let again = refused(fetcher.poll().await);
    assert_eq!(again.kind, FetchErrorKind::Digest);
    let log2 = nginx.mark();
    let requests = between(&log1, &log2);
    assert_eq!(requests[0], "GET /policies/payments/index.json 304 0");
    let hex = &a.bundle.descriptor.digest["sha256:".len()..];
    assert!(requests.iter().any(|l| l.contains(hex)), "{requests:?}");
    site.layout.put_blob(&a.bundle.bytes).unwrap();
    let got = fetched(fetcher.poll().await);
    assert_eq!(got.digest, a.digest);
}

#[tokio::test(flavor = "current_thread")]
async fn unsigned_is_refused_with_keys_and_accepted_when_allowed() {
    let site = Site::new();
    let Some(nginx) = start(&site, "the HTTP source signature test") else {
        return;
    };
    let key = PrivateKey::generate().unwrap();
    let a = artifact(80);
    publish(&site.layout, "v1", &a, None);

    let mut with_keys = fetcher(&nginx, ":v1", Trust::Keys(vec![key.public_key()]));
    let e = refused(with_keys.poll().await);
    assert_eq!(e.kind, FetchErrorKind::Signature, "{e}");
    assert!(e.message.contains("unsigned"), "{e}");

    let mut unsigned = fetcher(&nginx, ":v1", Trust::AllowUnsigned);
    let got = fetched(unsigned.poll().await);
    assert_eq!(got.digest, a.digest);
    assert_eq!(got.signer, None);

    // Signed by another key: still refused.
    let other = PrivateKey::generate().unwrap();
    publish(&site.layout, "v1", &a, Some(&other));
    let e = refused(
        with_keys
            .fetch()
            .await
            .map(|f| Polled::Fetched(Box::new(f))),
    );
    assert_eq!(e.kind, FetchErrorKind::Signature, "{e}");
    // By the right key: accepted (the signature tag is rewritten whole).
    publish(&site.layout, "v1", &a, Some(&key));
    let got = with_keys.fetch().await.unwrap();
    assert_eq!(got.signer, Some(key.public_key().key_id()));
}

#[tokio::test(flavor = "current_thread")]
async fn a_digest_pin_ignores_the_tag_and_costs_nothing_once_loaded() {
    let site = Site::new();
    let Some(nginx) = start(&site, "the HTTP source pin test") else {
        return;
    };
    let first = artifact(80);
    let second = artifact(81);
    publish(&site.layout, "v1", &first, None);
    publish(&site.layout, "v1", &second, None);

    let mut pinned = fetcher(&nginx, &format!("@{}", first.digest), Trust::AllowUnsigned);
    let got = fetched(pinned.poll().await);
    assert_eq!(got.digest, first.digest);
    pinned.set_current(&got.digest);
    let log1 = nginx.mark();
    assert!(
        !log1.iter().any(|l| l.contains("index.json")),
        "a pin without keys needs no index: {log1:?}"
    );
    assert!(matches!(pinned.poll().await, Ok(Polled::Unchanged)));
    let log2 = nginx.mark();
    assert_eq!(between(&log1, &log2), Vec::<String>::new());

    // A pin to a manifest the layout does not hold.
    let third = artifact(82);
    let mut missing = fetcher(&nginx, &format!("@{}", third.digest), Trust::AllowUnsigned);
    let e = refused(missing.poll().await);
    assert_eq!(e.kind, FetchErrorKind::NotFound, "{e}");
}

#[tokio::test(flavor = "current_thread")]
async fn an_artifact_over_the_limit_is_refused_before_its_blobs_are_read() {
    let site = Site::new();
    let Some(nginx) = start(&site, "the HTTP source size test") else {
        return;
    };
    let a = artifact(80);
    publish(&site.layout, "v1", &a, None);

    // The manifest's sizes are over the limit: no blob is asked for.
    let source = SourceRef::parse(&format!("{}/policies/payments:v1", nginx.url())).unwrap();
    let mut config = FetchConfig::new(Trust::AllowUnsigned);
    config.plain_http = true;
    config.max_bytes = a.manifest_bytes.len() as u64 + 10;
    let mut small = Fetcher::new(source, config).unwrap();
    let log0 = nginx.mark();
    let e = refused(small.poll().await);
    assert_eq!(e.kind, FetchErrorKind::TooLarge, "{e}");
    let log1 = nginx.mark();
    let manifest_hex = &a.digest["sha256:".len()..];
    let requests = between(&log0, &log1);
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(
        requests[0].starts_with("GET /policies/payments/index.json 200 "),
        "{requests:?}"
    );
    assert!(
        requests[1].starts_with(&format!(
            "GET /policies/payments/blobs/sha256/{manifest_hex} 200 "
        )),
        "{requests:?}"
    );

    // A blob file far larger than its descriptor says (served under the
    // same name): refused on its Content-Length, and the body is not read
    // whole (nginx logs how many bytes it got to send).
    let big = site.blob_file(&a.bundle.descriptor.digest);
    let huge: u64 = 64 << 20;
    std::fs::File::create(&big).unwrap().set_len(huge).unwrap();
    let mut fetcher = fetcher(&nginx, ":v1", Trust::AllowUnsigned);
    let e = refused(fetcher.poll().await);
    assert_eq!(e.kind, FetchErrorKind::TooLarge, "{e}");
    // nginx logs the aborted response once it notices the closed
    // connection, which may be after a later request: wait for the line,
    // letting the runtime run the client's connection task, which closes it.
    let hex = &a.bundle.descriptor.digest["sha256:".len()..];
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let line = loop {
        let log = nginx.access_log();
        if let Some(line) = log[log1.len()..].iter().find(|l| l.contains(hex)) {
            break line.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the bundle blob was not asked for: {log:?}"
        );
        tokio::task::yield_now().await;
        std::thread::sleep(Duration::from_millis(20));
    };
    let sent: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(sent < huge, "{line}");
}

/// A signature manifest is a list its source writes: many layers (payloads
/// by a stranger, and one payload listed again and again) cost at most
/// `MAX_SIGNATURES` payload requests, and a signature near the end by the
/// configured key is still found, even when the stranger signed the same
/// payload after it.
#[tokio::test(flavor = "current_thread")]
async fn a_signature_manifest_of_many_layers_costs_a_bounded_number_of_requests() {
    let site = Site::new();
    let Some(nginx) = start(&site, "the HTTP source signature layers test") else {
        return;
    };
    let key = PrivateKey::generate().unwrap();
    let stranger = PrivateKey::generate().unwrap();
    let a = artifact(80);
    publish(&site.layout, "v1", &a, None);
    let mut layers = Vec::new();
    for i in 0..100 {
        let p = signature::sign(&stranger, &format!("payments:junk{i}"), &a.digest).unwrap();
        site.layout.put_blob(&p.bytes).unwrap();
        layers.push(p.descriptor);
    }
    let first = layers[0].clone();
    layers.extend(std::iter::repeat_n(first, 50));
    // The same payload signed by the key, then by the stranger: two
    // signatures, one payload.
    let also = signature::sign(&stranger, "payments:v1", &a.digest).unwrap();
    let good = signature::sign(&key, "payments:v1", &a.digest).unwrap();
    assert_eq!(also.descriptor.digest, good.descriptor.digest);
    site.layout.put_blob(&good.bytes).unwrap();
    layers.push(good.descriptor);
    layers.push(also.descriptor);
    let sig = signature::signature_manifest(&layers);
    assert!(
        sig.manifest_bytes.len() < 64 << 10,
        "fits the manifest limit"
    );
    site.layout.put_blob(&sig.config.bytes).unwrap();
    let sig_tag = signature::signature_tag(&a.digest).unwrap();
    site.layout
        .put_manifest(&sig_tag, &sig.manifest_bytes)
        .unwrap();

    let mut fetcher = fetcher(&nginx, ":v1", Trust::Keys(vec![key.public_key()]));
    let log0 = nginx.mark();
    let got = fetched(fetcher.poll().await);
    assert_eq!(got.signer, Some(key.public_key().key_id()));
    let log1 = nginx.mark();
    let payloads: std::collections::HashSet<&str> = layers
        .iter()
        .map(|d| &d.digest["sha256:".len()..])
        .collect();
    let requests = between(&log0, &log1);
    let payload_gets = requests
        .iter()
        .filter(|l| payloads.iter().any(|hex| l.contains(hex)))
        .count();
    assert!(
        payload_gets <= sluice_fleet::fetch::MAX_SIGNATURES,
        "{payload_gets} payload requests: {requests:?}"
    );
}
