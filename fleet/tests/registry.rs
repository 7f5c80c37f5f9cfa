//! `sluice_fleet::registry` against a real registry: Debian's
//! `docker-registry` on loopback (sluice-testkit's `TestRegistry`).

use sluice_fleet::registry::{sha256_digest, OciRef, Registry, RegistryError};
use sluice_testkit::registry::TestRegistry;

const LIMIT: u64 = 1 << 20;

/// A manifest with an empty config and one layer holding `layer`.
fn manifest(layer: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.sluice.test.v1",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256_digest(b"{}"), "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": sha256_digest(layer), "size": layer.len()}],
    }))
    .unwrap()
}

async fn publish(client: &Registry, target: &OciRef, layer: &[u8]) -> (Vec<u8>, String) {
    client.push_blob(target, b"{}").await.unwrap();
    assert_eq!(
        client.push_blob(target, layer).await.unwrap(),
        sha256_digest(layer)
    );
    let bytes = manifest(layer);
    let digest = client.push_manifest(target, &bytes).await.unwrap();
    assert_eq!(digest, sha256_digest(&bytes));
    (bytes, digest)
}

#[tokio::test(flavor = "current_thread")]
async fn push_then_pull_by_tag_and_by_digest() {
    let Some(registry) = TestRegistry::start("the registry round trip") else {
        return;
    };
    let client = Registry::new(true);
    let target = OciRef::parse(&format!("oci://{}/team/policy:v1", registry.addr())).unwrap();
    let layer = b"a bundle's bytes".to_vec();
    let (bytes, digest) = publish(&client, &target, &layer).await;

    let by_tag = client.pull_manifest(&target).await.unwrap();
    assert_eq!(by_tag.bytes, bytes);
    assert_eq!(by_tag.digest, digest);
    let by_digest = client
        .pull_manifest(&target.at_digest(&digest))
        .await
        .unwrap();
    assert_eq!(by_digest.bytes, bytes);
    let blob = client
        .pull_blob(&target, &sha256_digest(&layer), LIMIT)
        .await
        .unwrap();
    assert_eq!(blob, layer);

    // Too large for the limit.
    let err = client
        .pull_blob(&target, &sha256_digest(&layer), 3)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::TooLarge(_)), "{err}");
    // A tag that does not exist.
    let missing = target.at_tag("v2");
    assert!(client.try_pull_manifest(&missing).await.unwrap().is_none());
    let err = client.pull_manifest(&missing).await.unwrap_err();
    assert!(matches!(err, RegistryError::NotFound(_)), "{err}");
    // A pin to a digest the registry does not have.
    let other = target.at_digest(&sha256_digest(b"nothing"));
    assert!(client.try_pull_manifest(&other).await.unwrap().is_none());
}

#[tokio::test(flavor = "current_thread")]
async fn tampered_blob_is_refused() {
    let Some(registry) = TestRegistry::start("the tampered-blob test") else {
        return;
    };
    let client = Registry::new(true);
    let target = OciRef::parse(&format!("oci://{}/team/policy:v1", registry.addr())).unwrap();
    let layer = b"a bundle's bytes, to be altered on disk".to_vec();
    publish(&client, &target, &layer).await;
    let file = registry.blob_file(&sha256_digest(&layer));
    let mut stored = std::fs::read(&file).unwrap();
    assert_eq!(stored, layer);
    stored[0] ^= 0x20;
    std::fs::write(&file, &stored).unwrap();
    let err = client
        .pull_blob(&target, &sha256_digest(&layer), LIMIT)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch(_)), "{err}");
    assert!(
        err.to_string().contains("does not match its digest"),
        "{err}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn signature_tag_holds_its_own_manifest() {
    let Some(registry) = TestRegistry::start("the signature-tag test") else {
        return;
    };
    let client = Registry::new(true);
    let target = OciRef::parse(&format!("oci://{}/team/policy:v1", registry.addr())).unwrap();
    let (_, digest) = publish(&client, &target, b"signed bundle").await;
    let sig_ref = target.signature_tag(&digest);
    assert_eq!(
        sig_ref.tag().unwrap(),
        format!("sha256-{}.sig", &digest["sha256:".len()..])
    );
    assert!(client.try_pull_manifest(&sig_ref).await.unwrap().is_none());
    let (sig_bytes, sig_digest) = publish(&client, &sig_ref, b"a signature payload").await;
    let pulled = client.try_pull_manifest(&sig_ref).await.unwrap().unwrap();
    assert_eq!(pulled.bytes, sig_bytes);
    assert_eq!(pulled.digest, sig_digest);
}

#[tokio::test(flavor = "current_thread")]
async fn https_is_the_default() {
    let Some(registry) = TestRegistry::start("the https-default test") else {
        return;
    };
    // Without plain HTTP the client speaks TLS to a plain-HTTP registry: refused.
    let client = Registry::new(false);
    let target = OciRef::parse(&format!("oci://{}/team/policy:v1", registry.addr())).unwrap();
    let err = client.pull_manifest(&target).await.unwrap_err();
    assert!(matches!(err, RegistryError::Transport(_)), "{err}");
}
