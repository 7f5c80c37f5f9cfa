//! A small valid bundle, corrupted at every byte and truncated at every
//! length, must always be rejected cleanly; with its hash recomputed (so
//! the table and automaton validation is reached), it must load or be
//! rejected without a panic, and a loaded one must decide without a panic.

use sluice_compiler::{compile, Config};
use sluice_runtime::{fuzz, AlignedBytes, Bundle};

const POLICY: &str = r#"
mesh { trust-domain "td" }
server web {
  port 80
  route api { method GET  path prefix "/api"  header "x-v" ~ r"v[0-9]" query "q" = "1" }
  route ex  { path "/x" }
}
server db { port 5432 protocol tcp }
allow a { to web.api  from identity "spiffe://td/ns/*/sa/x" }
deny  d { to web, db  from network 10.0.0.0/8 except 10.1.0.0/16 }
egress { allow h { host "*.example.com" port 443 } deny n { network 169.254.169.254 } }
service s {
  authority "s:80"
  backend b { endpoint 127.0.0.1:8080 }
  route r { to b }
}
"#;

fn small_bundle() -> Vec<u8> {
    let (policy, diags) = sluice_lang::parse::parse_str("small.sluice", POLICY);
    assert!(diags.is_empty(), "{diags:?}");
    compile(&policy, &Config::default())
        .expect("compiles")
        .bundle
}

fn rehash(bytes: &mut [u8]) {
    if bytes.len() >= 24 {
        let h = xxhash_rust::xxh3::xxh3_64(&bytes[24..]);
        bytes[16..24].copy_from_slice(&h.to_le_bytes());
    }
}

#[test]
fn every_flipped_byte_is_rejected() {
    let bundle = small_bundle();
    assert!(Bundle::from_bytes(AlignedBytes::new(&bundle).as_bytes()).is_ok());
    for i in 0..bundle.len() {
        for mask in [0x01u8, 0x80, 0xFF] {
            let mut b = bundle.clone();
            b[i] ^= mask;
            let aligned = AlignedBytes::new(&b);
            assert!(
                Bundle::from_bytes(aligned.as_bytes()).is_err(),
                "flip {mask:#x} at byte {i} was accepted"
            );
        }
    }
}

#[test]
fn every_truncation_is_rejected() {
    let bundle = small_bundle();
    for len in 0..bundle.len() {
        let aligned = AlignedBytes::new(&bundle[..len]);
        assert!(
            Bundle::from_bytes(aligned.as_bytes()).is_err(),
            "truncation to {len} bytes was accepted"
        );
    }
}

#[test]
fn corruption_behind_a_valid_hash_never_panics() {
    let bundle = small_bundle();
    for i in 24..bundle.len() {
        for mask in [0x01u8, 0x80, 0xFF] {
            let mut b = bundle.clone();
            b[i] ^= mask;
            rehash(&mut b);
            // Loads cleanly or fails cleanly; decisions on what loads never panic.
            fuzz::load_bundle(&b);
        }
    }
}

#[test]
fn misaligned_bytes_are_rejected() {
    let bundle = small_bundle();
    let mut shifted = vec![0u8; bundle.len() + 1];
    shifted[1..].copy_from_slice(&bundle);
    let aligned = AlignedBytes::new(&shifted);
    let inner = &aligned.as_bytes()[1..];
    assert!(Bundle::from_bytes(inner).is_err());
}

#[test]
fn same_input_same_bytes() {
    assert_eq!(small_bundle(), small_bundle());
}
