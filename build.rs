//! Embeds the patient page (`web/`, without its tests) into the binary.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    // Read when the script runs, not when it was compiled: a build script
    // binary may be reused for a checkout in another place.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let web = Path::new(&manifest_dir).join("web");
    println!("cargo:rerun-if-changed=web");
    let mut files = Vec::new();
    let entries = std::fs::read_dir(&web)
        .unwrap_or_else(|e| panic!("the patient page's directory {}: {e}", web.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        let servable = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("html" | "js" | "css" | "svg" | "png" | "ico" | "woff2")
        );
        if path.is_file() && servable {
            println!("cargo:rerun-if-changed={}", path.display());
            files.push(path);
        }
    }
    assert!(
        files.iter().any(|p| p.ends_with("index.html")),
        "no index.html in {}",
        web.display()
    );
    files.sort();
    let mut out = String::from(
        "/// The patient page's files: (name, bytes).\npub static ASSETS: &[(&str, &[u8])] = &[\n",
    );
    for path in &files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "    ({name:?}, include_bytes!({:?})),",
            path.display().to_string()
        );
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap_or_default()).join("web_assets.rs");
    if let Err(e) = std::fs::write(&dest, out) {
        panic!("writing {}: {e}", dest.display());
    }
}
