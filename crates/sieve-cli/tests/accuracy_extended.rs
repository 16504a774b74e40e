//! Extended: `sieve accuracy` on the full test split of every shared model equals the
//! top-1 in its model card (± 0.05 points for MNIST/CIFAR-10, ± 0.5 for ImageNet, where
//! the cards used Pillow's resize and we use fast_image_resize's equivalent filter).

mod common;

use common::shared;
use std::path::Path;
use std::process::Command;

fn card_test_top1(model_dir: &Path) -> f64 {
    let text = std::fs::read_to_string(model_dir.join("model.toml")).expect("model card");
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("test_top1"))
        .expect("test_top1 in card");
    line.split('=')
        .nth(1)
        .expect("value")
        .trim()
        .parse()
        .expect("number")
}

fn check(model: &str, dataset: String, tolerance_points: f64) {
    let s = shared();
    let dir = s.join("models").join(model);
    let out = Command::new(env!("CARGO_BIN_EXE_sieve"))
        .args(["accuracy", "--model"])
        .arg(dir.join("model.onnx"))
        .args(["--dataset", &dataset, "--split", "test", "--json"])
        .output()
        .expect("run sieve");
    assert!(
        out.status.success(),
        "{model}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let top1 = v["top1"].as_f64().expect("top1");
    let want = card_test_top1(&dir);
    eprintln!(
        "{model}: sieve top-1 {:.4} over {} images, card {:.4}, diff {:+.2} points",
        top1,
        v["count"],
        want,
        100.0 * (top1 - want)
    );
    assert!(
        (100.0 * (top1 - want)).abs() <= tolerance_points + 1e-9,
        "{model}: top-1 {top1} vs card {want}"
    );
}

fn data(rel: &str) -> String {
    shared().join("data").join(rel).display().to_string()
}

#[test]
#[ignore = "extended: needs ../shared"]
fn lenet5_mnist_test_top1_matches_card() {
    check("lenet5", format!("mnist:{}", data("mnist")), 0.05);
}

#[test]
#[ignore = "extended: needs ../shared"]
fn cifar10_quick_test_top1_matches_card() {
    check(
        "cifar10_quick",
        format!("cifar10:{}", data("cifar10/test_batch.bin.gz")),
        0.05,
    );
}

#[test]
#[ignore = "extended: needs ../shared"]
fn nin_cifar10_test_top1_matches_card() {
    check(
        "nin_cifar10",
        format!("cifar10:{}", data("cifar10/test_batch.bin.gz")),
        0.05,
    );
}

fn imagenet_val() -> String {
    format!(
        "images:{}:{}",
        data("imagenet/val1300"),
        data("imagenet/val1300_labels.txt")
    )
}

#[test]
#[ignore = "extended: needs ../shared"]
fn mobilenet_v2_val1300_top1_matches_card() {
    check("mobilenet_v2_1.0_224", imagenet_val(), 0.5);
}

#[test]
#[ignore = "extended: needs ../shared"]
fn mobilenet_v1_val1300_top1_matches_card() {
    check("mobilenet_v1_0.25_128", imagenet_val(), 0.5);
}
