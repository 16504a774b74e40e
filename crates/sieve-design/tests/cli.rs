//! Black-box tests of the `sieve-design` binary (design, inspect, eval) and the
//! extended test on the shared LeNet-5 model and MNIST validation split.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn shared() -> PathBuf {
    std::env::var_os("SIEVE_SHARED").map_or_else(|| root().join("../shared"), PathBuf::from)
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sieve-design"))
}

#[test]
fn design_then_inspect_then_eval() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lenet.sieve");
    let o = bin()
        .args(["design", "--model"])
        .arg(root().join("fixtures/lenet5/model.onnx"))
        .arg("--val")
        .arg(format!("mnist:{}", root().join("fixtures/mnist").display()))
        .args([
            "--val-split",
            "test",
            "--limit",
            "24",
            "--batch",
            "8",
            "--json",
            "--progress-secs",
            "0",
            "--out",
        ])
        .arg(&out)
        .arg("--report")
        .arg(dir.path().join("report"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // stderr is a pipe here: plain progress lines instead of a bar that draws nothing.
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("design ") && l.contains(" evaluations ("))
        .collect();
    assert!(lines.len() > 10, "{err}");
    // Before the count: one line per phase, the baseline among them.
    assert!(
        err.lines().any(|l| l.starts_with("design 0:00:")
            && l.contains(": baseline: the original on 24 images")),
        "{err}"
    );
    assert!(err.contains("design finished after "), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["images"], 24);
    assert_eq!(v["variants"].as_array().unwrap().len(), 3);
    assert!(v["package_bytes"].as_u64().unwrap() < v["onnx_bytes"].as_u64().unwrap() / 2);
    assert!(dir.path().join("report/report.md").exists());

    let o = bin().arg("inspect").arg(&out).output().unwrap();
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("checksum ok") && text.contains("accurate"),
        "{text}"
    );

    let o = bin()
        .args(["eval", "--package"])
        .arg(&out)
        .arg("--model")
        .arg(root().join("fixtures/lenet5/model.onnx"))
        .arg("--dataset")
        .arg(format!("mnist:{}", root().join("fixtures/mnist").display()))
        .args(["--limit", "24", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["results"].as_array().unwrap().len(), 4);

    // A corrupted package: clear error, no panic.
    let mut bytes = std::fs::read(&out).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0xff;
    std::fs::write(&out, &bytes).unwrap();
    let o = bin().arg("inspect").arg(&out).output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("checksum mismatch"), "{err}");
    assert!(!err.contains("panicked"));
}

/// Out-of-range settings are refused before any work, naming the option.
#[test]
fn bad_settings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("--min-agreement=1.5", "--min-agreement must be in [0, 1]"),
        ("--min-agreement=NaN", "--min-agreement must be in [0, 1]"),
        (
            "--progress-secs=-1",
            "--progress-secs must be a finite number >= 0",
        ),
        (
            "--progress-secs=inf",
            "--progress-secs must be a finite number >= 0",
        ),
        (
            "--progress-secs=NaN",
            "--progress-secs must be a finite number >= 0",
        ),
    ];
    for (bad, want) in cases {
        let o = bin()
            .args(["design", "--model"])
            .arg(root().join("fixtures/lenet5/model.onnx"))
            .args([
                "--val",
                &format!("mnist:{}", root().join("fixtures/mnist").display()),
            ])
            .arg(bad)
            .arg("--out")
            .arg(dir.path().join("x.sieve"))
            .output()
            .unwrap();
        assert!(!o.status.success(), "{bad}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "{bad}: {err}");
        assert!(!dir.path().join("x.sieve").exists());
    }
}

#[test]
#[ignore = "extended: needs ../shared"]
fn lenet5_accurate_variant_keeps_test_accuracy() {
    let shared = shared();
    assert!(
        shared.join("models/lenet5/model.onnx").exists(),
        "shared folder missing: {}",
        shared.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lenet5.sieve");
    let model = shared.join("models/lenet5/model.onnx");
    let data = format!("mnist:{}", shared.join("data/mnist").display());
    let o = bin()
        .args(["design", "--model"])
        .arg(&model)
        .args(["--val", &data, "--limit", "5000", "--json", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let acc = v["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["variant"] == "accurate")
        .unwrap()
        .clone();
    assert!(acc["avg_weight_bits"].as_f64().unwrap() <= 8.0, "{acc}");
    let o = bin()
        .args(["eval", "--package"])
        .arg(&out)
        .arg("--model")
        .arg(&model)
        .args(["--dataset", &data, "--split", "test", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let top1 = |name: &str| {
        r["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["variant"] == name)
            .unwrap()["top1"]
            .as_f64()
            .unwrap()
    };
    assert!(top1("original") > 0.98);
    assert!(
        top1("accurate") >= top1("original") - 0.005,
        "accurate {} vs original {}",
        top1("accurate"),
        top1("original")
    );
}
