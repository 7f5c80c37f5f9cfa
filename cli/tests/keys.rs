//! `sluice keys generate`: the files it writes are a usable key pair (a
//! signature made with the private key verifies with the public one), the
//! private key is readable by its owner only, and existing files are kept.

use std::path::Path;
use std::process::Command;

use sluice_fleet::keys::{PrivateKey, PublicKey};

fn sluice(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .output()
        .expect("run sluice");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn keys_generate_writes_a_key_pair_and_keeps_existing_files() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-keys");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let prefix = dir.join("release");
    let prefix = prefix.to_str().unwrap();

    let (code, out, err) = sluice(&["keys", "generate", "--out", prefix]);
    assert_eq!(code, 0, "{err}");
    let key_path = format!("{prefix}.key");
    let pub_path = format!("{prefix}.pub");
    let key = PrivateKey::from_pem(&std::fs::read_to_string(&key_path).unwrap()).unwrap();
    let public = PublicKey::from_pem(&std::fs::read_to_string(&pub_path).unwrap()).unwrap();
    assert_eq!(key.public_key(), public);
    assert!(public.verify(b"m", &key.sign(b"m").unwrap()));
    assert!(out.contains(&public.key_id()), "{out}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let before = std::fs::read(&key_path).unwrap();
    let (code, _, err) = sluice(&["keys", "generate", "--out", prefix]);
    assert_eq!(code, 2);
    assert!(err.contains("already exists; not overwriting it"), "{err}");
    assert_eq!(std::fs::read(&key_path).unwrap(), before);
    std::fs::remove_dir_all(&dir).unwrap();
}
