//! Black-box tests of the `sieve` binary on the fixtures shipped in the repo.

mod common;

use common::{error_line, root, sieve, stdout_json};
use std::path::PathBuf;
use std::process::Output;

/// A failing command: non-zero exit and a single `error:` line naming the problem.
fn assert_clean_error(out: &Output, needles: &[&str]) {
    let line = error_line(out).to_lowercase();
    for n in needles {
        assert!(line.contains(&n.to_lowercase()), "'{n}' not in: {line}");
    }
}

#[test]
fn accuracy_on_the_shipped_mnist_slice_matches_onnxruntime() {
    let out = sieve(&[
        "accuracy",
        "--model",
        "fixtures/lenet5/model.onnx",
        "--dataset",
        "mnist:fixtures/mnist",
        "--json",
        "--progress-secs",
        "0",
    ]);
    let v = stdout_json(&out);
    assert_eq!(v["count"], 1000);
    // onnxruntime 1.32: 989/1000 top-1, 1000/1000 top-5 (fixtures/README.md).
    assert_eq!(v["top1"].as_f64(), Some(0.989));
    assert_eq!(v["top5"].as_f64(), Some(1.0));
    // stderr is a pipe here: a plain line per batch of 64 instead of a bar that draws
    // nothing, the last one at 1000/1000, and a closing line.
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("accuracy ") && l.contains(" images ("))
        .collect();
    assert_eq!(lines.len(), 16, "{err}");
    assert!(lines[15].contains(" 1000/1000 images (100.0%)"), "{err}");
    assert!(err.contains("accuracy finished after "), "{err}");
}

#[test]
fn accuracy_limit_and_validation_split_errors() {
    let v = stdout_json(&sieve(&[
        "accuracy",
        "--model",
        "fixtures/lenet5/model.onnx",
        "--dataset",
        "mnist:fixtures/mnist",
        "--limit",
        "100",
        "--json",
    ]));
    assert_eq!(v["count"], 100);
    // The slice has no training images, so the validation split cannot be built.
    let out = sieve(&[
        "accuracy",
        "--model",
        "fixtures/lenet5/model.onnx",
        "--dataset",
        "mnist:fixtures/mnist",
        "--split",
        "validation",
    ]);
    assert_clean_error(&out, &["train"]);
}

#[test]
fn infer_reproduces_onnxruntime_reference_outputs() {
    let dir = tempdir();
    let out_path = dir.join("y.npy");
    let out = sieve(&[
        "infer",
        "--model",
        "fixtures/lenet5/model.onnx",
        "--input",
        "fixtures/lenet5/reference/input_uint8.npy",
        "--output",
        out_path.to_str().expect("utf-8 path"),
        "--json",
    ]);
    let v = stdout_json(&out);
    assert_eq!(v["outputs"][0]["shape"], serde_json::json!([32, 10]));
    let got = sieve_data::npy::read_npy(&out_path).expect("output npy");
    let want = sieve_data::npy::read_npy(root().join("fixtures/lenet5/reference/output.npy"))
        .expect("reference npy");
    assert_eq!(got.shape, want.shape);
    let (g, w) = (got.to_f32_vec(), want.to_f32_vec());
    let max_diff = g
        .iter()
        .zip(&w)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(max_diff <= 1e-4, "max |diff| {max_diff}");
}

#[test]
fn bench_reports_the_documented_json_fields() {
    let v = stdout_json(&sieve(&[
        "bench",
        "--model",
        "fixtures/lenet5/model.onnx",
        "--batch",
        "2",
        "--runs",
        "3",
        "--min-seconds",
        "0",
        "--json",
    ]));
    let median = v["median_ms"].as_f64().expect("median_ms");
    let p90 = v["p90_ms"].as_f64().expect("p90_ms");
    let tput = v["throughput_per_s"].as_f64().expect("throughput_per_s");
    assert!(median > 0.0 && p90 >= median, "{v}");
    assert!((tput - 2000.0 / median).abs() < 1e-6 * tput, "{v}");
}

#[test]
fn a_batch_larger_than_memory_is_refused_not_aborted() {
    // 10^9 LeNet-5 images need terabytes; the allocator would abort the process.
    let out = sieve(&[
        "bench",
        "--model",
        "fixtures/lenet5/model.onnx",
        "--batch",
        "1000000000",
        "--runs",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_clean_error(&out, &["--batch 1000000000", "gib", "available"]);
}

#[test]
fn design_names_the_model_it_cannot_read() {
    let dir = tempdir();
    let garbage = dir.join("garbage.onnx");
    std::fs::write(&garbage, b"\xff\xfe not protobuf").expect("write");
    let out = sieve(&[
        "design",
        "--model",
        garbage.to_str().expect("utf-8"),
        "--val",
        "mnist:fixtures/mnist",
        "--out",
        dir.join("x.sieve").to_str().expect("utf-8"),
    ]);
    // The plain progress line says the design stopped; the error line follows it.
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    let last = err.lines().last().unwrap_or_default();
    for needle in [
        "error: designing ",
        "garbage.onnx: ",
        "not a valid ONNX model",
    ] {
        assert!(last.contains(needle), "'{needle}' not in: {err}");
    }
    assert!(!dir.join("x.sieve").exists());
    // An output folder that does not exist fails before the search starts.
    let out = sieve(&[
        "design",
        "--model",
        "fixtures/lenet5/model.onnx",
        "--val",
        "mnist:fixtures/mnist",
        "--val-split",
        "test",
        "--no-journal",
        "--out",
        dir.join("no/such/folder/x.sieve").to_str().expect("utf-8"),
    ]);
    let e = error_line(&out);
    assert!(
        e.contains("--out") && e.contains("no/such/folder/x.sieve"),
        "{e}"
    );
}

#[test]
fn an_absurd_thread_count_is_refused() {
    let out = sieve(&[
        "bench",
        "--model",
        "fixtures/lenet5/model.onnx",
        "--threads",
        "100000",
        "--runs",
        "1",
    ]);
    assert_clean_error(&out, &["100000 threads", "at most 1024"]);
}

#[test]
fn a_missing_model_file_is_named_once() {
    let out = sieve(&["bench", "--model", "no/such/model.onnx", "--runs", "1"]);
    assert_clean_error(&out, &["no/such/model.onnx"]);
    let line = error_line(&out);
    assert_eq!(line.matches("os error 2").count(), 1, "{line}");
}

#[test]
fn garbage_and_truncated_models_are_rejected_cleanly() {
    let dir = tempdir();
    let garbage = dir.join("garbage.onnx");
    std::fs::write(&garbage, b"\xff\xfe this is not protobuf \x00\x01\x02").expect("write");
    let out = sieve(&[
        "bench",
        "--model",
        garbage.to_str().expect("utf-8"),
        "--runs",
        "1",
    ]);
    assert_clean_error(&out, &["garbage.onnx", "onnx"]);

    let bytes = std::fs::read(root().join("fixtures/lenet5/model.onnx")).expect("read");
    let truncated = dir.join("truncated.onnx");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    let out = sieve(&[
        "bench",
        "--model",
        truncated.to_str().expect("utf-8"),
        "--runs",
        "1",
    ]);
    assert_clean_error(&out, &["truncated.onnx"]);

    let missing = dir.join("missing.onnx");
    let out = sieve(&[
        "bench",
        "--model",
        missing.to_str().expect("utf-8"),
        "--runs",
        "1",
    ]);
    assert_clean_error(&out, &["missing.onnx"]);
}

#[test]
fn unsupported_op_and_attribute_name_the_node() {
    let out = sieve(&[
        "bench",
        "--model",
        "fixtures/bad/unsupported_op.onnx",
        "--runs",
        "1",
    ]);
    assert_clean_error(&out, &["hardmax_1", "Hardmax"]);
    let out = sieve(&[
        "bench",
        "--model",
        "fixtures/bad/bad_attribute.onnx",
        "--runs",
        "1",
    ]);
    assert_clean_error(&out, &["conv_bad", "auto_pad"]);
}

#[test]
fn wrong_shape_and_nan_inputs_are_rejected_cleanly() {
    let dir = tempdir();
    let wrong = dir.join("wrong.npy");
    sieve_data::npy::write_npy_f32(&wrong, &[1, 3, 28, 28], &vec![0.0; 3 * 28 * 28])
        .expect("write npy");
    let y = dir.join("y.npy");
    let out = sieve(&[
        "infer",
        "--model",
        "fixtures/lenet5/model.onnx",
        "--input",
        wrong.to_str().expect("utf-8"),
        "--output",
        y.to_str().expect("utf-8"),
    ]);
    assert_clean_error(&out, &["shape"]);
    assert!(!y.exists(), "no output may be written on error");

    let nan = dir.join("nan.npy");
    let mut data = vec![1.0f32; 28 * 28];
    data[100] = f32::NAN;
    sieve_data::npy::write_npy_f32(&nan, &[1, 1, 28, 28], &data).expect("write npy");
    let out = sieve(&[
        "infer",
        "--model",
        "fixtures/lenet5/model.onnx",
        "--input",
        nan.to_str().expect("utf-8"),
        "--output",
        y.to_str().expect("utf-8"),
    ]);
    assert_clean_error(&out, &["nan", "100"]);
}

#[test]
fn every_command_has_help() {
    for cmd in ["infer", "accuracy", "bench", "design", "serve"] {
        let out = sieve(&[cmd, "--help"]);
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("--model"));
    }
}

fn tempdir() -> PathBuf {
    common::tempdir("cli")
}

#[test]
fn design_then_run_a_variant_of_the_package() {
    let dir = tempdir();
    let pkg = dir.join("lenet5.sieve");
    let pkg_s = pkg.to_str().expect("utf-8");
    // Designed from a copy of the model (with its card), so that the test can
    // later take the package's recorded source away.
    let src = dir.join("model.onnx");
    std::fs::copy(root().join("fixtures/lenet5/model.onnx"), &src).expect("copy model");
    std::fs::copy(
        root().join("fixtures/lenet5/model.toml"),
        dir.join("model.toml"),
    )
    .expect("copy card");
    let src_s = src.to_str().expect("utf-8");
    let out = sieve(&[
        "design",
        "--model",
        src_s,
        "--val",
        "mnist:fixtures/mnist",
        "--val-split",
        "test",
        "--limit",
        "200",
        "--no-journal",
        "--out",
        pkg_s,
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let onnx_bytes = std::fs::metadata(root().join("fixtures/lenet5/model.onnx"))
        .expect("onnx")
        .len();
    let pkg_bytes = std::fs::metadata(&pkg).expect("package written").len();
    assert!(
        pkg_bytes * 3 < onnx_bytes,
        "package {pkg_bytes} B vs onnx {onnx_bytes} B"
    );

    let v = stdout_json(&sieve(&[
        "accuracy",
        "--model",
        pkg_s,
        "--variant",
        "accurate",
        "--dataset",
        "mnist:fixtures/mnist",
        "--limit",
        "200",
        "--json",
    ]));
    assert_eq!(v["count"], 200);
    assert!(v["top1"].as_f64().expect("top1") >= 0.95, "{v}");

    let out = sieve(&["inspect", pkg_s]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The original of a package runs the source ONNX the package records (its
    // sha256 checked): the same top-1 as the ONNX file itself.
    let acc = |model: &str, variant: Option<&str>| {
        let mut args = vec![
            "accuracy",
            "--model",
            model,
            "--dataset",
            "mnist:fixtures/mnist",
            "--limit",
            "200",
            "--json",
        ];
        args.extend(variant.map(|v| ["--variant", v]).into_iter().flatten());
        stdout_json(&sieve(&args))["top1"].as_f64().expect("top1")
    };
    assert_eq!(
        acc(pkg_s, Some("original")),
        acc("fixtures/lenet5/model.onnx", None)
    );
    // ... and when that source is gone, asking for the original is a clear error
    // naming the path.
    std::fs::remove_file(&src).expect("remove source");
    let out = sieve(&[
        "bench",
        "--model",
        pkg_s,
        "--variant",
        "original",
        "--runs",
        "1",
    ]);
    assert_clean_error(&out, &["model.onnx"]);
    // A variant of a plain ONNX file is a clear error too.
    let out = sieve(&[
        "bench",
        "--model",
        "fixtures/lenet5/model.onnx",
        "--variant",
        "exact",
        "--runs",
        "1",
    ]);
    assert_clean_error(&out, &[".sieve"]);
}
