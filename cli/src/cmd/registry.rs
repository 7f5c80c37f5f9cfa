//! `sluice push`, `sluice pull` and `sluice sign`: bundles as signed OCI
//! artifacts in a registry (sluice-fleet does the work).
//!
//! - `push (POLICY | BUNDLE) (oci://HOST[:PORT]/REPO:TAG | oci:DIR:TAG)
//!   [--source FILE]` prints the manifest digest; `oci:DIR:TAG` writes an
//!   image layout in the local folder `DIR` (for a static HTTP server).
//!   A policy file is compiled as `sluice
//!   compile` does and is itself the source layer; a compiled bundle is
//!   pushed as it is, with `--source FILE` as its source layer, or an empty
//!   source layer without it.
//! - `pull REF -o FILE (--key PUB ... | --allow-unsigned)`, REF a registry
//!   reference or an image layout's `https://HOST/PATH:TAG`, checks the
//!   manifest digest (the pin, when REF has one), the signature with any of
//!   the keys, every blob's digest and that the bundle loads with the
//!   annotated hash, and only then writes the bundle.
//! - `sign REF --key PRIVATE` signs REF's manifest digest and pushes the
//!   signature manifest under `sha256-<hex>.sig`, keeping the signatures
//!   already there; REF may be a layout `oci:DIR:TAG`, and `--identity`
//!   sets the payload's `docker-reference`.
//!
//! Plain HTTP only with `--plain-http`.

use crate::args::{PullArgs, PushArgs, SignArgs};
use crate::policy;
use crate::{Io, EXIT_FAILED, EXIT_IO, EXIT_OK};
use sluice_fleet::artifact;
use sluice_fleet::fetch::{Content, FetchConfig, Fetcher, Trust};
use sluice_fleet::keys::{PrivateKey, PublicKey};
use sluice_fleet::layout::{LayoutDir, LayoutRef};
use sluice_fleet::registry::{OciRef, Registry};
use sluice_fleet::signature;
use sluice_fleet::source::SourceRef;
use sluice_lang::render;
use sluice_runtime::AlignedBytes;
use std::io;
use std::path::Path;

/// Runs `sluice push`.
pub fn run_push(args: &PushArgs, io: &mut Io<'_>) -> io::Result<u8> {
    let target = if LayoutRef::is_layout(&args.reference) {
        match LayoutRef::parse(&args.reference) {
            Ok(r) => Target::Layout(r),
            Err(e) => return super::io_failure(io, e),
        }
    } else {
        match OciRef::parse(&args.reference) {
            Ok(r) if r.tag().is_some() => Target::Registry(r),
            Ok(r) => {
                writeln!(io.err, "error: `{r}` names no tag to push to")?;
                return Ok(EXIT_FAILED);
            }
            Err(e) => return super::io_failure(io, e),
        }
    };
    let input = match std::fs::read(&args.input) {
        Ok(b) => b,
        Err(e) => {
            return super::io_failure(io, format!("cannot read `{}`: {e}", args.input.display()))
        }
    };
    let aligned = AlignedBytes::new(&input);
    let is_bundle = policy::bundle(&aligned, "input").is_ok();
    let (bundle, source) = if is_bundle {
        let source = match &args.source {
            Some(path) => match std::fs::read(path) {
                Ok(b) => b,
                Err(e) => {
                    return super::io_failure(io, format!("cannot read `{}`: {e}", path.display()))
                }
            },
            None => Vec::new(),
        };
        (input, source)
    } else {
        if args.source.is_some() {
            writeln!(
                io.err,
                "error: `--source` goes with a compiled bundle; `{}` is a policy, which is its own source",
                args.input.display()
            )?;
            return Ok(EXIT_FAILED);
        }
        match compile(&args.input, args.dfa_size_limit, io)? {
            Some(bundle) => (bundle, input),
            None => return Ok(EXIT_FAILED),
        }
    };
    let built = match artifact::build(&bundle, &source, None) {
        Ok(a) => a,
        Err(e) => {
            writeln!(io.err, "error: {e}")?;
            return Ok(EXIT_FAILED);
        }
    };
    let pushed = match &target {
        Target::Registry(target) => {
            let client = Registry::new(args.plain_http);
            block_on(async {
                for blob in built.blobs() {
                    client.push_blob(target, &blob.bytes).await?;
                }
                client.push_manifest(target, &built.manifest_bytes).await
            })?
            .map_err(|e| e.to_string())
        }
        Target::Layout(target) => {
            let layout = LayoutDir::new(target.dir());
            built
                .blobs()
                .iter()
                .try_for_each(|blob| layout.put_blob(&blob.bytes).map(drop))
                .and_then(|()| layout.put_manifest(target.tag(), &built.manifest_bytes))
                .map_err(|e| format!("cannot write `{target}`: {e}"))
        }
    };
    match pushed {
        Ok(digest) => {
            writeln!(io.out, "{digest}")?;
            Ok(EXIT_OK)
        }
        Err(e) => super::io_failure(io, e),
    }
}

/// Where `push` and `sign` write: a registry, or an image layout in a
/// local folder.
enum Target {
    /// `oci://HOST[:PORT]/REPO:TAG`.
    Registry(OciRef),
    /// `oci:DIR:TAG`.
    Layout(LayoutRef),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Registry(r) => r.fmt(f),
            Target::Layout(r) => r.fmt(f),
        }
    }
}

/// Compiles the policy at `path`; `None` after printing its diagnostics.
fn compile(
    path: &Path,
    dfa_size_limit: Option<usize>,
    io: &mut Io<'_>,
) -> io::Result<Option<Vec<u8>>> {
    let parsed = match policy::load(path) {
        Ok(p) => p,
        Err(e) => {
            writeln!(io.err, "error: {e}")?;
            return Ok(None);
        }
    };
    match policy::compile(&parsed, &super::config(dfa_size_limit)) {
        Ok(c) => {
            if !c.warnings.is_empty() {
                write!(io.err, "{}", render::human(parsed.files(), &c.warnings))?;
            }
            Ok(Some(c.bundle))
        }
        Err(diags) => {
            write!(io.err, "{}", render::human(parsed.files(), &diags))?;
            writeln!(io.err, "error: could not compile `{}`", path.display())?;
            Ok(None)
        }
    }
}

/// Runs `sluice pull`.
pub fn run_pull(args: &PullArgs, io: &mut Io<'_>) -> io::Result<u8> {
    let source = match SourceRef::parse(&args.reference) {
        Ok(r) => r,
        Err(e) => return super::io_failure(io, e),
    };
    if source.is_plain_http_url() && !args.plain_http {
        writeln!(
            io.err,
            "error: `{source}` is plain HTTP, without TLS: pull it with `--plain-http`, or serve it over `https://`"
        )?;
        return Ok(EXIT_FAILED);
    }
    if args.keys.is_empty() && !args.allow_unsigned {
        writeln!(
            io.err,
            "error: give the signers' public keys with `--key`, or pull without checking a signature with `--allow-unsigned`"
        )?;
        return Ok(EXIT_FAILED);
    }
    let mut keys = Vec::new();
    for path in &args.keys {
        let key = std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|pem| PublicKey::from_pem(&pem).map_err(|e| e.to_string()));
        match key {
            Ok(k) => keys.push(k),
            Err(e) => {
                return super::io_failure(io, format!("cannot read key `{}`: {e}", path.display()))
            }
        }
    }
    let trust = if keys.is_empty() {
        Trust::AllowUnsigned
    } else {
        Trust::Keys(keys)
    };
    let mut config = FetchConfig::new(trust);
    config.plain_http = args.plain_http;
    config.max_bytes = args.max_bundle_bytes.unwrap_or(artifact::DEFAULT_MAX_BYTES);
    let pulled = block_on(async {
        let mut fetcher = Fetcher::new(source.clone(), config)?;
        fetcher.fetch().await
    })?;
    let fetched = match pulled {
        Ok(f) => f,
        Err(e) => {
            writeln!(io.err, "error: refused `{source}`: {e}")?;
            return Ok(EXIT_FAILED);
        }
    };
    let Content::Bundle(verified) = fetched.content else {
        writeln!(
            io.err,
            "error: refused `{source}`: it holds no bundle this sluice reads"
        )?;
        return Ok(EXIT_FAILED);
    };
    if let Err(e) = std::fs::write(&args.output, verified.bundle.as_bytes()) {
        writeln!(
            io.err,
            "error: cannot write the bundle `{}`: {e}",
            args.output.display()
        )?;
        return Ok(EXIT_IO);
    }
    let signer = match fetched.signer {
        Some(id) => format!("signed by key {id}"),
        None => "unsigned".to_owned(),
    };
    writeln!(
        io.out,
        "wrote {} ({} bytes, hash {}) from {}, {signer}",
        args.output.display(),
        verified.bundle.as_bytes().len(),
        verified.bundle_hash,
        verified.digest,
    )?;
    Ok(EXIT_OK)
}

/// Runs `sluice sign`.
pub fn run_sign(args: &SignArgs, io: &mut Io<'_>) -> io::Result<u8> {
    let target = if LayoutRef::is_layout(&args.reference) {
        match LayoutRef::parse(&args.reference) {
            Ok(r) => Target::Layout(r),
            Err(e) => return super::io_failure(io, e),
        }
    } else {
        match OciRef::parse(&args.reference) {
            Ok(r) => Target::Registry(r),
            Err(e) => return super::io_failure(io, e),
        }
    };
    let identity = args.identity.as_deref();
    if let Some(bad) = identity.filter(|i| {
        i.is_empty() || i.contains("://") || i.chars().any(|c| c.is_whitespace() || c.is_control())
    }) {
        writeln!(
            io.err,
            "error: `--identity {bad}` is not a reference `HOST[:PORT]/REPO[:TAG]` (no scheme, no spaces)"
        )?;
        return Ok(EXIT_FAILED);
    }
    let key = std::fs::read_to_string(&args.key)
        .map_err(|e| e.to_string())
        .and_then(|pem| {
            // cosign's encrypted keys open with `COSIGN_PASSWORD`, as in cosign.
            let password = sluice_fleet::keys::password_from_env();
            PrivateKey::from_pem_with_password(&pem, password.as_deref()).map_err(|e| e.to_string())
        });
    let key = match key {
        Ok(k) => k,
        Err(e) => {
            return super::io_failure(io, format!("cannot read key `{}`: {e}", args.key.display()))
        }
    };
    let signed = match &target {
        Target::Registry(r) => {
            let client = Registry::new(args.plain_http);
            block_on(sign(&client, r, &key, identity))?.map(|(d, sig)| (d, sig.to_string()))
        }
        Target::Layout(r) => sign_layout(r, &key, identity).map(|(d, sig)| (d, sig.to_string())),
    };
    match signed {
        Ok((digest, sig_ref)) => {
            writeln!(
                io.out,
                "signed {digest} as {sig_ref} with key {}",
                key.public_key().key_id()
            )?;
            Ok(EXIT_OK)
        }
        Err(e) => {
            writeln!(io.err, "error: cannot sign `{target}`: {e}")?;
            Ok(EXIT_FAILED)
        }
    }
}

/// Signs the manifest `target` names and pushes the signature manifest,
/// after the signatures already there; the digest and the signature tag.
/// `identity`, when given, is the `docker-reference` written in the
/// payload instead of the target's repository and tag.
async fn sign(
    client: &Registry,
    target: &OciRef,
    key: &PrivateKey,
    identity: Option<&str>,
) -> Result<(String, OciRef), String> {
    let manifest = client
        .pull_manifest(target)
        .await
        .map_err(|e| e.to_string())?;
    let digest = manifest.digest;
    let repository = format!("{}/{}", target.registry(), target.repository());
    let docker_reference = match (identity, target.tag()) {
        (Some(identity), _) => identity.to_owned(),
        (None, Some(tag)) => format!("{repository}:{tag}"),
        (None, None) => repository,
    };
    let payload = signature::sign(key, &docker_reference, &digest).map_err(|e| e.to_string())?;
    let sig_ref = target.signature_tag(&digest);
    let mut layers = match client
        .try_pull_manifest(&sig_ref)
        .await
        .map_err(|e| e.to_string())?
    {
        Some(existing) => {
            signature::signature_layers(&existing.bytes).map_err(|e| e.to_string())?
        }
        None => Vec::new(),
    };
    layers.push(payload.descriptor.clone());
    let sig_manifest = signature::signature_manifest(&layers);
    client
        .push_blob(&sig_ref, &payload.bytes)
        .await
        .map_err(|e| e.to_string())?;
    client
        .push_blob(&sig_ref, &sig_manifest.config.bytes)
        .await
        .map_err(|e| e.to_string())?;
    client
        .push_manifest(&sig_ref, &sig_manifest.manifest_bytes)
        .await
        .map_err(|e| e.to_string())?;
    Ok((digest, sig_ref))
}

/// Signs the manifest tagged in the layout `target` and writes the
/// signature manifest under `sha256-<hex>.sig` in the same layout, after
/// the signatures already there; the digest and the signature's
/// reference. The payload's `docker-reference` is `identity`, or the
/// layout folder's name and the tag (`payments:v1` for
/// `oci:/srv/www/payments:v1`).
fn sign_layout(
    target: &LayoutRef,
    key: &PrivateKey,
    identity: Option<&str>,
) -> Result<(String, LayoutRef), String> {
    let layout = LayoutDir::new(target.dir());
    let manifest = layout
        .manifest(target.tag())
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("the layout tags no manifest `{}`", target.tag()))?;
    let digest = manifest.digest;
    let docker_reference = match identity {
        Some(identity) => identity.to_owned(),
        None => format!("{}:{}", layout_name(target.dir()), target.tag()),
    };
    let payload = signature::sign(key, &docker_reference, &digest).map_err(|e| e.to_string())?;
    let sig_tag = signature::signature_tag(&digest).map_err(|e| e.to_string())?;
    let mut layers = match layout.manifest(&sig_tag).map_err(|e| e.to_string())? {
        Some(existing) => {
            signature::signature_layers(&existing.bytes).map_err(|e| e.to_string())?
        }
        None => Vec::new(),
    };
    layers.push(payload.descriptor.clone());
    let sig_manifest = signature::signature_manifest(&layers);
    layout
        .put_blob(&payload.bytes)
        .and_then(|_| layout.put_blob(&sig_manifest.config.bytes))
        .and_then(|_| layout.put_manifest(&sig_tag, &sig_manifest.manifest_bytes))
        .map_err(|e| e.to_string())?;
    Ok((digest, target.at_tag(&sig_tag)))
}

/// The name of the layout folder `dir` (of its absolute path for `.` or
/// `..`).
fn layout_name(dir: &Path) -> String {
    let absolute = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    absolute
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "layout".to_owned())
}

/// Runs `future` on a current-thread runtime.
fn block_on<F: std::future::Future>(future: F) -> io::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(future))
}
