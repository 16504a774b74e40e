//! Helpers shared by the black-box tests of the `sieve` binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root (fixtures are relative to it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shared data folder of the extended tests: `SIEVE_SHARED`, else `<root>/../shared`.
/// Fails (does not skip) when it is missing.
pub fn shared() -> PathBuf {
    let p =
        std::env::var_os("SIEVE_SHARED").map_or_else(|| root().join("../shared"), PathBuf::from);
    assert!(
        p.join("models").is_dir() && p.join("data").is_dir(),
        "extended test needs the shared folder at {} (set SIEVE_SHARED)",
        p.display()
    );
    p
}

/// Runs the `sieve` binary from the workspace root.
pub fn sieve(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sieve"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("running sieve")
}

/// Asserts success and parses stdout as one JSON object.
pub fn stdout_json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "sieve failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON object")
}

/// Asserts a clean failure (exit code 1, exactly one `error:` line on stderr, no
/// panic) and returns that line.
pub fn error_line(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "expected exit code 1");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    lines[0].to_string()
}

/// A fresh temporary directory, unique per process and call (`tag` names the test file).
pub fn tempdir(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "sieve-{tag}-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
