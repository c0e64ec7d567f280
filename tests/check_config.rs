//! `telenode serve --check-config`: every example configuration validates;
//! a misspelt key, a bad address and a missing certificate each fail with a
//! clear error that names the key, and nothing is started.

use std::process::Command;

fn check(args: &[&str], config: Option<&str>) -> (bool, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_telenode"));
    cmd.arg("serve");
    if let Some(text) = config {
        let path = dir.path().join("node.toml");
        std::fs::write(&path, text).expect("write config");
        cmd.arg("--config").arg(path);
    }
    cmd.args(args).arg("--check-config");
    cmd.env_remove("TELENODE_LISTEN")
        .env_remove("TELENODE_CONFIG");
    let out = cmd.output().expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_example_config_validates() {
    let mut seen = 0;
    for entry in
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/examples")).expect("examples")
    {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let (ok, stdout, stderr) = check(&[], Some(&text));
        assert!(ok, "{} does not validate: {stderr}", path.display());
        assert!(stdout.contains("configuration ok"), "{stdout}");
        assert!(stdout.contains("listen: http://127.0.0.1:8080"), "{stdout}");
        seen += 1;
    }
    assert!(seen >= 1, "no example config found");
}

#[test]
fn misspelt_key_is_named() {
    let (ok, _, stderr) = check(&[], Some("lisen = \"127.0.0.1:8080\"\n"));
    assert!(!ok);
    assert!(stderr.contains("lisen"), "{stderr}");
    assert!(stderr.contains("unknown field"), "{stderr}");
}

#[test]
fn bad_address_is_named() {
    let (ok, _, stderr) = check(&[], Some("listen = \"127.0.0.1:99999\"\n"));
    assert!(!ok);
    assert!(stderr.contains("listen"), "{stderr}");
    let (ok, _, stderr) = check(&["--listen", "nowhere"], None);
    assert!(!ok);
    assert!(stderr.contains("--listen"), "{stderr}");
}

#[test]
fn public_address_without_tls_is_named() {
    let (ok, _, stderr) = check(&[], Some("listen = \"0.0.0.0:8443\"\n"));
    assert!(!ok);
    assert!(
        stderr.contains("listen:") && stderr.contains("tls_cert"),
        "{stderr}"
    );
}

#[test]
fn missing_certificate_is_named() {
    let text = "listen = \"0.0.0.0:8443\"\ntls_cert = \"/nonexistent/fullchain.pem\"\ntls_key = \"/nonexistent/privkey.pem\"\n";
    let (ok, _, stderr) = check(&[], Some(text));
    assert!(!ok);
    assert!(stderr.contains("tls_cert:"), "{stderr}");
    assert!(stderr.contains("/nonexistent/fullchain.pem"), "{stderr}");
}

#[test]
fn environment_overrides_the_file_and_flags_override_the_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.toml");
    std::fs::write(&path, "listen = \"127.0.0.1:8001\"\n").expect("write");
    let run = |env: Option<&str>, flag: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_telenode"));
        cmd.args(["serve", "--config"])
            .arg(&path)
            .arg("--check-config");
        cmd.env_remove("TELENODE_LISTEN");
        if let Some(e) = env {
            cmd.env("TELENODE_LISTEN", e);
        }
        if let Some(f) = flag {
            cmd.args(["--listen", f]);
        }
        String::from_utf8_lossy(&cmd.output().expect("runs").stdout).into_owned()
    };
    assert!(run(None, None).contains("127.0.0.1:8001"));
    assert!(run(Some("127.0.0.1:8002"), None).contains("127.0.0.1:8002"));
    assert!(run(Some("127.0.0.1:8002"), Some("127.0.0.1:8003")).contains("127.0.0.1:8003"));
}
