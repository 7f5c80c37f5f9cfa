//! The policy pulled from a real registry (`docker-registry` on loopback):
//! signed artifacts switch the proxy, refused ones (tampered, unsigned,
//! another signer, another bundle format) leave the old bundle serving,
//! a source down at start fails closed or serves the cache, a digest pin
//! ignores tag moves; an image layout served by a real nginx is pulled too. Every case checks real traffic through the proxy, the
//! admin `/policy` and the metrics.

use crate::support;

use sluice_fleet::artifact::{self, Artifact, FORMAT_VERSION_ANNOTATION};
use sluice_fleet::keys::PrivateKey;
use sluice_fleet::layout::LayoutDir;
use sluice_fleet::registry::{OciRef, Registry};
use sluice_fleet::signature;
use sluice_proxy::{reload, remote, Config, Proxy};
use sluice_runtime::bundle::FORMAT_VERSION;
use sluice_testkit::nginx::TestNginx;
use sluice_testkit::registry::TestRegistry;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

/// Allows `GET /api/x` from loopback.
const ALLOW: &str = r#"
server web { port 8080  protocol http  route api { path prefix "/api" } }
allow open-api { to web.api  from network 127.0.0.0/8 }
"#;

/// Denies it.
const DENY: &str = r#"
server web { port 8080  protocol http  route api { path prefix "/api" } }
deny closed-api { to web.api  from network 127.0.0.0/8 }
"#;

const REPO: &str = "team/policy";

/// A registry, a client, a signing key (`signer.pub` in `dir`) and an
/// application behind the proxy.
struct Fleet {
    registry: TestRegistry,
    client: Registry,
    dir: TempDir,
    key: PrivateKey,
    app: SocketAddr,
    app_hits: Arc<std::sync::atomic::AtomicUsize>,
}

impl Fleet {
    async fn start(what: &str) -> Option<Fleet> {
        let registry = TestRegistry::start(what)?;
        let dir = TempDir::new("remote-policy");
        let key = PrivateKey::generate().unwrap();
        std::fs::write(dir.path("signer.pub"), key.public_key().to_pem()).unwrap();
        let (app, app_hits) = echo_server().await;
        Some(Fleet {
            registry,
            client: Registry::new(true),
            dir,
            key,
            app,
            app_hits,
        })
    }

    fn target(&self, tag: &str) -> OciRef {
        OciRef::parse(&self.reference(tag)).unwrap()
    }

    /// `oci://ADDR/team/policy:TAG`.
    fn reference(&self, tag: &str) -> String {
        format!("oci://{}/{REPO}:{tag}", self.registry.addr())
    }

    /// Pushes `artifact`'s blobs and its manifest under `tag`; its digest.
    async fn push(&self, tag: &str, artifact: &Artifact) -> String {
        let target = self.target(tag);
        for blob in artifact.blobs() {
            self.client.push_blob(&target, &blob.bytes).await.unwrap();
        }
        self.push_manifest(tag, &artifact.manifest_bytes).await
    }

    /// Pushes manifest bytes under `tag` (moving the tag); their digest.
    async fn push_manifest(&self, tag: &str, bytes: &[u8]) -> String {
        let digest = self
            .client
            .push_manifest(&self.target(tag), bytes)
            .await
            .unwrap();
        assert_eq!(digest, artifact::sha256_digest(bytes));
        digest
    }

    /// Signs the manifest `digest` with `key`, as `sluice sign` does.
    async fn sign(&self, digest: &str, key: &PrivateKey) {
        let docker_reference = format!("{}/{REPO}", self.registry.addr());
        let payload = signature::sign(key, &docker_reference, digest).unwrap();
        let sig_ref = self.target("unused").signature_tag(digest);
        let mut layers = match self.client.try_pull_manifest(&sig_ref).await.unwrap() {
            Some(existing) => signature::signature_layers(&existing.bytes).unwrap(),
            None => Vec::new(),
        };
        layers.push(payload.descriptor.clone());
        let manifest = signature::signature_manifest(&layers);
        self.client
            .push_blob(&sig_ref, &payload.bytes)
            .await
            .unwrap();
        self.client
            .push_blob(&sig_ref, &manifest.config.bytes)
            .await
            .unwrap();
        self.client
            .push_manifest(&sig_ref, &manifest.manifest_bytes)
            .await
            .unwrap();
    }

    /// Publishes a policy as a signed artifact under `tag`: pushed under a
    /// build tag and signed first, then `tag` moved to it, so the proxy
    /// never sees it unsigned. Its digest.
    async fn publish(&self, tag: &str, policy: &str) -> String {
        let artifact = build(policy);
        let build_tag = format!("build-{}", &artifact.digest[7..19]);
        let digest = self.push(&build_tag, &artifact).await;
        self.sign(&digest, &self.key).await;
        self.push_manifest(tag, &artifact.manifest_bytes).await
    }

    /// A proxy configuration pulling `source` every 200 ms, with `extra`
    /// lines in `[policy]` (`keys = ["signer.pub"]` unless they say
    /// otherwise).
    fn toml(&self, source: &str, extra: &str) -> String {
        let keys = if extra.contains("keys") || extra.contains("allow-unsigned") {
            ""
        } else {
            "keys = [\"signer.pub\"]\n"
        };
        let interval = if extra.contains("poll-interval-ms") {
            ""
        } else {
            "poll-interval-ms = 200\n"
        };
        format!(
            "[policy]\nsource = \"{source}\"\n{keys}{extra}plain-http = true\n{interval}[admin]\nlisten = \"127.0.0.1:0\"\n[[inbound]]\nlisten = \"127.0.0.1:0\"\nport = 8080\napp = \"{}\"\ntls = \"plaintext\"\n",
            self.app
        )
    }

    async fn proxy(&self, toml: &str) -> Proxy {
        start_proxy(&self.dir, toml).await
    }
}

/// The artifact of a policy: its compiled bundle and its source.
fn build(policy: &str) -> Artifact {
    artifact::build(&compile(policy), policy.as_bytes(), None).unwrap()
}

fn hash_of(policy: &str) -> String {
    sluice_proxy::store::LoadedBundle::load(&compile(policy), 0)
        .unwrap()
        .hash()
        .to_owned()
}

/// Polls `probe` every 50 ms until it gives `Some`, for at most 30 s.
async fn wait_for<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET /policy` as JSON, when a bundle serves.
async fn policy_json(admin: SocketAddr) -> Option<serde_json::Value> {
    let (status, body) = admin_get(admin, "/policy").await;
    (status == 200).then(|| serde_json::from_str(&body).unwrap())
}

async fn serving_hash(admin: SocketAddr) -> Option<String> {
    policy_json(admin)
        .await
        .map(|p| p["hash"].as_str().unwrap().to_owned())
}

/// Waits until the proxy serves the bundle `hash`.
async fn wait_serving(admin: SocketAddr, hash: &str) {
    wait_for(&format!("the bundle {hash} in service"), || async {
        (serving_hash(admin).await.as_deref() == Some(hash)).then_some(())
    })
    .await
}

async fn metrics(admin: SocketAddr) -> String {
    admin_get(admin, "/metrics").await.1
}

fn fetches(metrics: &str, result: &str) -> f64 {
    metric_sum(metrics, "sluice_policy_fetch_total", &[("result", result)])
}

/// Waits until `sluice_policy_fetch_total{result}` reaches `n`.
async fn wait_fetches(admin: SocketAddr, result: &str, n: f64) {
    wait_for(&format!("{n} fetches with result `{result}`"), || async {
        (fetches(&metrics(admin).await, result) >= n).then_some(())
    })
    .await
}

/// The status of `GET /api/x` through the proxy.
async fn api_status(proxy: &Proxy) -> u16 {
    http1(proxy.inbound_addrs()[0], "GET", "/api/x", &[])
        .await
        .status
}

/// Asserts that a proxy without a bundle closes a request's connection
/// without an answer (the readiness rule).
async fn assert_not_forwarded(proxy: &Proxy) {
    let answer = raw_exchange(
        proxy.inbound_addrs()[0],
        b"GET /api/x HTTP/1.1\r\nHost: web\r\n\r\n",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(answer, "", "a proxy that is not ready answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_signed_artifact_replaces_the_old_one() {
    let Some(fleet) = Fleet::start("the remote policy switch test").await else {
        return;
    };
    let d1 = fleet.publish("live", ALLOW).await;
    let proxy = fleet.proxy(&fleet.toml(&fleet.reference("live"), "")).await;
    let admin = proxy.admin_addr();
    wait_serving(admin, &hash_of(ALLOW)).await;
    assert_eq!(api_status(&proxy).await, 200);
    let p = policy_json(admin).await.unwrap();
    let key_id = fleet.key.public_key().key_id();
    assert_eq!(p["source"], fleet.reference("live"));
    assert_eq!(p["digest"], d1.as_str());
    assert_eq!(p["signer"], key_id.as_str());
    assert_eq!(p["format"], FORMAT_VERSION);
    assert!(p["fetched_at_unix_ms"].as_u64().unwrap() > 0, "{p}");
    wait_fetches(admin, "unchanged", 2.0).await;

    let d2 = fleet.publish("live", DENY).await;
    wait_serving(admin, &hash_of(DENY)).await;
    assert_eq!(api_status(&proxy).await, 403);
    assert_eq!(policy_json(admin).await.unwrap()["digest"], d2.as_str());
    wait_fetches(admin, "unchanged", 3.0).await;
    let m = metrics(admin).await;
    assert_eq!(fetches(&m, "updated"), 2.0, "{m}");
    let info = [
        ("source", fleet.reference("live")),
        ("digest", d2.clone()),
        ("hash", hash_of(DENY)),
        ("format", FORMAT_VERSION.to_string()),
        ("signer", key_id),
    ];
    let labels: Vec<(&str, &str)> = info.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(metric_sum(&m, "sluice_policy_info", &labels), 1.0, "{m}");
    assert_eq!(
        metric_sum(&m, "sluice_policy_info", &[]),
        1.0,
        "one label set: {m}"
    );
    assert!(!m.contains(&d1), "the old label set is gone: {m}");
    assert!(
        metric_sum(&m, "sluice_policy_last_success_timestamp_seconds", &[]) > 1.7e9,
        "{m}"
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_reload_polls_at_once() {
    let Some(fleet) = Fleet::start("the remote policy POST /reload test").await else {
        return;
    };
    fleet.publish("live", ALLOW).await;
    let toml = fleet.toml(&fleet.reference("live"), "poll-interval-ms = 600000\n");
    let proxy = fleet.proxy(&toml).await;
    let admin = proxy.admin_addr();
    wait_serving(admin, &hash_of(ALLOW)).await;
    let (status, body) = admin_reload(admin).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&hash_of(ALLOW)), "{body}");
    assert_eq!(fetches(&metrics(admin).await, "unchanged"), 1.0);

    fleet.publish("live", DENY).await;
    let (status, body) = admin_reload(admin).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&hash_of(DENY)), "{body}");
    assert_eq!(api_status(&proxy).await, 403);
    assert_eq!(fetches(&metrics(admin).await, "updated"), 2.0);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_artifact_over_max_bundle_bytes_is_refused() {
    let Some(fleet) = Fleet::start("the remote policy size-limit test").await else {
        return;
    };
    fleet.publish("live", ALLOW).await;
    let toml = fleet.toml(&fleet.reference("live"), "max-bundle-bytes = 256\n");
    let proxy = fleet.proxy(&toml).await;
    wait_fetches(proxy.admin_addr(), "too_large", 2.0).await;
    assert_eq!(admin_get(proxy.admin_addr(), "/ready").await.0, 503);
    assert_not_forwarded(&proxy).await;
    proxy.shutdown().await;
}

/// Serves `ALLOW` from tag `live`; the proxy.
async fn serving_allow(fleet: &Fleet) -> Proxy {
    fleet.publish("live", ALLOW).await;
    let proxy = fleet.proxy(&fleet.toml(&fleet.reference("live"), "")).await;
    wait_serving(proxy.admin_addr(), &hash_of(ALLOW)).await;
    assert_eq!(api_status(&proxy).await, 200);
    proxy
}

/// Asserts that `ALLOW` still serves, by hash and by traffic.
async fn still_serving_allow(proxy: &Proxy) {
    assert_eq!(
        serving_hash(proxy.admin_addr()).await.as_deref(),
        Some(hash_of(ALLOW).as_str())
    );
    assert_eq!(api_status(proxy).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_blob_is_refused_and_the_old_bundle_serves() {
    let Some(fleet) = Fleet::start("the remote policy tampered-blob test").await else {
        return;
    };
    let proxy = serving_allow(&fleet).await;
    let deny = build(DENY);
    let digest = fleet.push("build", &deny).await;
    fleet.sign(&digest, &fleet.key).await;
    let file = fleet.registry.blob_file(&deny.bundle.descriptor.digest);
    let mut stored = std::fs::read(&file).unwrap();
    assert_eq!(stored, deny.bundle.bytes);
    let last = stored.len() - 1;
    stored[last] ^= 0x01;
    std::fs::write(&file, &stored).unwrap();
    fleet.push_manifest("live", &deny.manifest_bytes).await;
    wait_fetches(proxy.admin_addr(), "digest_mismatch", 2.0).await;
    still_serving_allow(&proxy).await;
    let m = metrics(proxy.admin_addr()).await;
    assert_eq!(fetches(&m, "updated"), 1.0, "{m}");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_artifact_is_refused_and_the_old_bundle_serves() {
    let Some(fleet) = Fleet::start("the remote policy unsigned test").await else {
        return;
    };
    let proxy = serving_allow(&fleet).await;
    let digest = fleet.push("live", &build(DENY)).await;
    wait_fetches(proxy.admin_addr(), "bad_signature", 2.0).await;
    still_serving_allow(&proxy).await;
    let (status, body) = admin_reload(proxy.admin_addr()).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("is unsigned"), "{body}");

    // Signed afterwards (push, then sign: the usual order), the same
    // digest is taken at a later poll: a missing signature is not
    // remembered as a refusal.
    fleet.sign(&digest, &fleet.key).await;
    wait_serving(proxy.admin_addr(), &hash_of(DENY)).await;
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_artifact_signed_by_another_key_is_refused() {
    let Some(fleet) = Fleet::start("the remote policy other-signer test").await else {
        return;
    };
    let proxy = serving_allow(&fleet).await;
    let deny = build(DENY);
    let digest = fleet.push("build", &deny).await;
    fleet.sign(&digest, &PrivateKey::generate().unwrap()).await;
    fleet.push_manifest("live", &deny.manifest_bytes).await;
    wait_fetches(proxy.admin_addr(), "bad_signature", 2.0).await;
    still_serving_allow(&proxy).await;
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_down_at_start_without_cache_fails_closed() {
    let Some(mut fleet) = Fleet::start("the remote policy fail-closed test").await else {
        return;
    };
    tokio::task::block_in_place(|| fleet.registry.stop());
    let proxy = fleet.proxy(&fleet.toml(&fleet.reference("live"), "")).await;
    let admin = proxy.admin_addr();
    wait_fetches(admin, "unreachable", 2.0).await;
    let (status, body) = admin_get(admin, "/ready").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("a valid policy bundle"), "{body}");
    assert_not_forwarded(&proxy).await;
    assert_eq!(
        fleet.app_hits.load(Ordering::Relaxed),
        0,
        "nothing forwarded"
    );

    tokio::task::block_in_place(|| fleet.registry.restart());
    fleet.publish("live", ALLOW).await;
    wait_serving(admin, &hash_of(ALLOW)).await;
    assert_eq!(admin_get(admin, "/ready").await.0, 200);
    assert_eq!(api_status(&proxy).await, 200);
    assert_eq!(fleet.app_hits.load(Ordering::Relaxed), 1);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_down_at_start_serves_the_cache() {
    let Some(mut fleet) = Fleet::start("the remote policy cache test").await else {
        return;
    };
    let digest = fleet.publish("live", ALLOW).await;
    let toml = fleet.toml(&fleet.reference("live"), "cache-dir = \"cache\"\n");
    let proxy = fleet.proxy(&toml).await;
    wait_serving(proxy.admin_addr(), &hash_of(ALLOW)).await;
    let record = wait_for("the cache record", || async {
        let text = std::fs::read(fleet.dir.path("cache/artifact.json")).ok()?;
        Some(serde_json::from_slice::<serde_json::Value>(&text).unwrap())
    })
    .await;
    assert_eq!(record["source"], fleet.reference("live"));
    assert_eq!(record["digest"], digest.as_str());
    assert_eq!(record["hash"], hash_of(ALLOW).as_str());
    assert_eq!(record["signer"], fleet.key.public_key().key_id().as_str());
    assert_eq!(
        std::fs::read(fleet.dir.path("cache/bundle.bin")).unwrap(),
        compile(ALLOW)
    );
    proxy.shutdown().await;
    tokio::task::block_in_place(|| fleet.registry.stop());

    // Started again with the source down: the cached bundle serves at once.
    let proxy = fleet.proxy(&toml).await;
    let admin = proxy.admin_addr();
    assert_eq!(admin_get(admin, "/ready").await.0, 200);
    let p = policy_json(admin).await.unwrap();
    assert_eq!(p["hash"], hash_of(ALLOW).as_str());
    assert_eq!(p["digest"], digest.as_str());
    assert_eq!(api_status(&proxy).await, 200);
    wait_fetches(admin, "unreachable", 1.0).await;
    still_serving_allow(&proxy).await;
    proxy.shutdown().await;

    // Not for a cache of another source, nor one signed by a key no longer trusted.
    std::fs::write(
        fleet.dir.path("other.pub"),
        PrivateKey::generate().unwrap().public_key().to_pem(),
    )
    .unwrap();
    for toml in [
        fleet.toml(&fleet.reference("other"), "cache-dir = \"cache\"\n"),
        fleet.toml(
            &fleet.reference("live"),
            "cache-dir = \"cache\"\nkeys = [\"other.pub\"]\n",
        ),
    ] {
        let proxy = fleet.proxy(&toml).await;
        assert_eq!(
            admin_get(proxy.admin_addr(), "/ready").await.0,
            503,
            "{toml}"
        );
        assert_not_forwarded(&proxy).await;
        proxy.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_down_later_is_counted_and_the_bundle_serves() {
    let Some(mut fleet) = Fleet::start("the remote policy source-down test").await else {
        return;
    };
    let proxy = serving_allow(&fleet).await;
    tokio::task::block_in_place(|| fleet.registry.stop());
    wait_fetches(proxy.admin_addr(), "unreachable", 2.0).await;
    still_serving_allow(&proxy).await;
    let (status, body) = admin_reload(proxy.admin_addr()).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("cannot reach"), "{body}");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_pin_ignores_tag_moves() {
    let Some(fleet) = Fleet::start("the remote policy digest-pin test").await else {
        return;
    };
    let digest = fleet.publish("live", ALLOW).await;
    let pinned = format!("oci://{}/{REPO}@{digest}", fleet.registry.addr());
    let proxy = fleet.proxy(&fleet.toml(&pinned, "")).await;
    let admin = proxy.admin_addr();
    wait_serving(admin, &hash_of(ALLOW)).await;
    fleet.publish("live", DENY).await;
    let before = fetches(&metrics(admin).await, "unchanged");
    wait_fetches(admin, "unchanged", before + 3.0).await;
    still_serving_allow(&proxy).await;
    assert_eq!(policy_json(admin).await.unwrap()["digest"], digest.as_str());
    assert_eq!(fetches(&metrics(admin).await, "updated"), 1.0);
    proxy.shutdown().await;
}

/// The artifact of `policy` claiming the next bundle format version.
fn next_format(policy: &str) -> Artifact {
    let mut a = build(policy);
    let next = FORMAT_VERSION + 1;
    a.manifest
        .annotations
        .as_mut()
        .unwrap()
        .insert(FORMAT_VERSION_ANNOTATION.to_owned(), next.to_string());
    a.manifest.layers[0].media_type = artifact::bundle_media_type(next);
    a.manifest_bytes = a.manifest.to_bytes();
    a.digest = artifact::sha256_digest(&a.manifest_bytes);
    a
}

/// A compile hook as the `sluice` binary's: the text as one file.
fn compiler() -> remote::PolicySourceCompiler {
    Arc::new(|text: &[u8]| {
        let text = std::str::from_utf8(text).map_err(|e| e.to_string())?;
        let (ast, diags) = sluice_lang::parse::parse_str("policy.sluice", text);
        if diags
            .iter()
            .any(|d| d.severity == sluice_lang::Severity::Error)
        {
            return Err(format!("{diags:?}"));
        }
        sluice_compiler::compile(&ast, &sluice_compiler::Config::default())
            .map(|c| c.bundle)
            .map_err(|d| format!("{d:?}"))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_format_version_is_refused_or_compiled_from_source() {
    let Some(fleet) = Fleet::start("the remote policy format-version test").await else {
        return;
    };
    let proxy = serving_allow(&fleet).await;
    let admin = proxy.admin_addr();
    let next = next_format(DENY);
    let digest = fleet.push("build", &next).await;
    fleet.sign(&digest, &fleet.key).await;
    fleet.push_manifest("live", &next.manifest_bytes).await;
    wait_fetches(admin, "format_version", 2.0).await;
    still_serving_allow(&proxy).await;
    let (status, body) = admin_reload(admin).await;
    assert_eq!(status, 422, "{body}");
    let (found, reads) = (
        format!("version `{}`", FORMAT_VERSION + 1),
        format!("reads version {FORMAT_VERSION}"),
    );
    assert!(body.contains(&found) && body.contains(&reads), "{body}");
    proxy.shutdown().await;

    // With `compile-source-on-mismatch` and a compiler: the signed source serves.
    let toml = fleet.toml(
        &fleet.reference("live"),
        "compile-source-on-mismatch = true\n",
    );
    let config = Config::parse(&toml, &fleet.dir.0).unwrap();
    let proxy = Proxy::start_with_compiler(config, reload::bundle_file_loader(), compiler())
        .await
        .unwrap();
    let admin = proxy.admin_addr();
    wait_serving(admin, &hash_of(DENY)).await;
    assert_eq!(api_status(&proxy).await, 403);
    let p = policy_json(admin).await.unwrap();
    assert_eq!(p["digest"], digest.as_str());
    assert_eq!(fetches(&metrics(admin).await, "updated"), 1.0);
    proxy.shutdown().await;

    // Without a compiler, the proxy cannot build it: refused as invalid.
    let proxy = fleet.proxy(&toml).await;
    wait_fetches(proxy.admin_addr(), "invalid", 2.0).await;
    assert_eq!(admin_get(proxy.admin_addr(), "/ready").await.0, 503);
    let (status, body) = admin_reload(proxy.admin_addr()).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("no policy compiler"), "{body}");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_that_does_not_read_stops_the_start() {
    let dir = TempDir::new("remote-policy-key");
    let toml = "[policy]\nsource = \"oci://127.0.0.1:9/team/policy:v1\"\nkeys = [\"missing.pub\"]\nplain-http = true\n[admin]\nlisten = \"127.0.0.1:0\"\n";
    let config = Config::parse(toml, &dir.0).unwrap();
    let e = Proxy::start(config, reload::bundle_file_loader())
        .await
        .err()
        .expect("a missing key stops the start")
        .to_string();
    assert!(e.contains("missing.pub"), "{e}");
}

/// Writes the signed artifact of `policy` into `layout` under `tag`: blobs
/// and signature first, then the tag, so the proxy never sees it unsigned.
/// `index.json`'s mtime moves 10 s past its previous one: nginx's ETag is
/// mtime seconds and size, which a rewrite in the same second may keep.
fn publish_to_layout(layout: &LayoutDir, tag: &str, policy: &str, key: &PrivateKey) -> String {
    let index = layout.root().join("index.json");
    let before = std::fs::metadata(&index).and_then(|m| m.modified()).ok();
    let a = build(policy);
    for blob in a.blobs() {
        layout.put_blob(&blob.bytes).unwrap();
    }
    let payload = signature::sign(key, &format!("web:{tag}"), &a.digest).unwrap();
    let sig = signature::signature_manifest(std::slice::from_ref(&payload.descriptor));
    layout.put_blob(&payload.bytes).unwrap();
    layout.put_blob(&sig.config.bytes).unwrap();
    let sig_tag = signature::signature_tag(&a.digest).unwrap();
    layout.put_manifest(&sig_tag, &sig.manifest_bytes).unwrap();
    let digest = layout.put_manifest(tag, &a.manifest_bytes).unwrap();
    if let Some(before) = before {
        std::fs::File::options()
            .write(true)
            .open(&index)
            .unwrap()
            .set_modified(before + Duration::from_secs(10))
            .unwrap();
    }
    digest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_layout_is_pulled_and_switched() {
    let dir = TempDir::new("remote-policy-http");
    let layout = LayoutDir::new(dir.path("site/policies/web"));
    layout.init().unwrap();
    let Some(nginx) = TestNginx::start("the HTTP layout policy test", &dir.path("site")) else {
        return;
    };
    let key = PrivateKey::generate().unwrap();
    std::fs::write(dir.path("signer.pub"), key.public_key().to_pem()).unwrap();
    let d1 = publish_to_layout(&layout, "live", ALLOW, &key);
    let (app, _) = echo_server().await;
    let source = format!("{}/policies/web:live", nginx.url());
    let toml = format!(
        "[policy]\nsource = \"{source}\"\nkeys = [\"signer.pub\"]\nplain-http = true\npoll-interval-ms = 200\n[admin]\nlisten = \"127.0.0.1:0\"\n[[inbound]]\nlisten = \"127.0.0.1:0\"\nport = 8080\napp = \"{app}\"\ntls = \"plaintext\"\n"
    );
    let proxy = start_proxy(&dir, &toml).await;
    let admin = proxy.admin_addr();
    wait_serving(admin, &hash_of(ALLOW)).await;
    assert_eq!(api_status(&proxy).await, 200);
    let p = policy_json(admin).await.unwrap();
    assert_eq!(
        (&p["source"], &p["digest"]),
        (&source.clone().into(), &d1.into())
    );
    wait_fetches(admin, "unchanged", 2.0).await;

    publish_to_layout(&layout, "live", DENY, &key);
    wait_serving(admin, &hash_of(DENY)).await;
    assert_eq!(api_status(&proxy).await, 403);
    assert_eq!(fetches(&metrics(admin).await, "updated"), 2.0);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_bundle_is_described_without_digest_or_signer() {
    let dir = TempDir::new("remote-policy-local");
    std::fs::write(dir.path("policy.bundle"), compile(ALLOW)).unwrap();
    let toml =
        "[policy]\nbundle = \"policy.bundle\"\nwatch = false\n[admin]\nlisten = \"127.0.0.1:0\"\n";
    let proxy = start_proxy(&dir, toml).await;
    let admin = proxy.admin_addr();
    let p = policy_json(admin).await.unwrap();
    let path = dir.path("policy.bundle").display().to_string();
    assert_eq!(p["source"], path.as_str());
    assert!(p["digest"].is_null() && p["signer"].is_null() && p["fetched_at_unix_ms"].is_null());
    assert_eq!(p["format"], FORMAT_VERSION);
    let m = metrics(admin).await;
    let format = FORMAT_VERSION.to_string();
    let labels = [
        ("source", path.as_str()),
        ("digest", ""),
        ("hash", &hash_of(ALLOW)),
        ("format", format.as_str()),
        ("signer", ""),
    ];
    assert_eq!(metric_sum(&m, "sluice_policy_info", &labels), 1.0, "{m}");
    assert_eq!(fetches(&m, "updated") + fetches(&m, "unchanged"), 0.0);
    proxy.shutdown().await;
}

/// Allows `GET /api/x` by another rule: the third policy of the candidate test.
const ALLOW_AGAIN: &str = r#"
server web { port 8080  protocol http  route api { path prefix "/api" } }
allow api-again { to web.api  from network 127.0.0.0/8 }
"#;

/// `/policy`'s candidate hash, once there is one.
async fn candidate_hash(admin: SocketAddr) -> Option<String> {
    let p = policy_json(admin).await?;
    p["candidate"]["hash"].as_str().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_candidate_is_verified_like_the_policy_and_not_enforced() {
    let Some(fleet) = Fleet::start("the remote candidate test").await else {
        return;
    };
    fleet.publish("live", ALLOW).await;
    let next = fleet.publish("next", DENY).await;
    let candidate = format!("candidate = \"{}\"\n", fleet.reference("next"));
    let proxy = fleet
        .proxy(&fleet.toml(&fleet.reference("live"), &candidate))
        .await;
    let admin = proxy.admin_addr();
    wait_serving(admin, &hash_of(ALLOW)).await;
    let deny_hash = hash_of(DENY);
    wait_for("the candidate", || async {
        (candidate_hash(admin).await.as_deref() == Some(deny_hash.as_str())).then_some(())
    })
    .await;
    let p = policy_json(admin).await.unwrap();
    assert_eq!(p["candidate"]["source"], fleet.reference("next"), "{p}");
    assert_eq!(p["candidate"]["digest"], next.as_str(), "{p}");
    let key_id = fleet.key.public_key().key_id();
    assert_eq!(p["candidate"]["signer"], key_id.as_str(), "{p}");
    assert!(p["candidate"]["error"].is_null(), "{p}");
    // Enforced by the live policy, counted as a disagreement.
    assert_eq!(api_status(&proxy).await, 200);
    let m = metrics(admin).await;
    assert_eq!(
        metric_sum(&m, "sluice_candidate_decisions_total", &[]),
        1.0,
        "{m}"
    );
    let labels = [
        ("server", "web"),
        ("route", "api"),
        ("live", "allow:rule:open-api"),
        ("candidate", "deny:rule:closed-api"),
    ];
    assert_eq!(
        metric_sum(&m, "sluice_candidate_disagreements_total", &labels),
        1.0,
        "{m}"
    );
    // The candidate's polls are not the policy's.
    assert_eq!(fetches(&m, "updated"), 1.0, "{m}");

    // An unsigned candidate is refused like an unsigned policy: the
    // previous candidate stays, and `/policy` says why.
    fleet.push("next", &build(ALLOW_AGAIN)).await;
    let error = wait_for("the candidate's refusal", || async {
        let p = policy_json(admin).await?;
        p["candidate"]["error"].as_str().map(str::to_owned)
    })
    .await;
    assert!(error.contains("is unsigned"), "{error}");
    assert_eq!(candidate_hash(admin).await, Some(deny_hash.clone()));
    assert_eq!(admin_get(admin, "/ready").await.0, 200);
    let m = metrics(admin).await;
    assert!(
        metric_sum(&m, "sluice_candidate_reloads_total", &[("result", "error")]) >= 1.0,
        "{m}"
    );
    proxy.shutdown().await;
}
