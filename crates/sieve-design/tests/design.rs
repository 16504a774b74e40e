//! Core tests on the LeNet-5 fixture and the 1,000-image MNIST fixture (its test
//! split stands in for a validation set; `--limit` keeps them fast).
#![allow(clippy::unwrap_used, clippy::panic)]

use sieve_data::Split;
use sieve_design::meta::SearchSettings;
use sieve_design::search::Settings;
use sieve_design::{design, DesignError, Package, TensorKind, Variant};
use sieve_nn::{RunOptions, Tensor};
use std::path::PathBuf;
use std::sync::OnceLock;

const LIMIT: usize = 48;

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn model_bytes() -> Vec<u8> {
    std::fs::read(root().join("fixtures/lenet5/model.onnx")).unwrap()
}

fn settings(journal: Option<PathBuf>, max_evals: Option<usize>) -> Settings {
    Settings {
        dataset: format!("mnist:{}", root().join("fixtures/mnist").display()),
        split: Split::Test,
        limit: Some(LIMIT),
        background_offset: 0,
        cache_bytes: 1 << 30,
        search: SearchSettings::paper(16),
        journal,
        max_evals,
        output: None,
        source_path: None,
        sub_batch: sieve_design::search::DEFAULT_SUB_BATCH,
        sub_batch_bytes: sieve_design::search::DEFAULT_SUB_BATCH_BYTES,
        reuse_identical: true,
        stop_early: true,
    }
}

/// One uninterrupted run without journal, shared by the tests.
fn package() -> &'static (Package, Vec<u8>) {
    static P: OnceLock<(Package, Vec<u8>)> = OnceLock::new();
    P.get_or_init(|| {
        let out = design(&model_bytes(), &settings(None, None), &|_| {}).unwrap();
        let p = Package::from_outcome(out);
        let bytes = p.to_bytes().unwrap();
        (p, bytes)
    })
}

fn images(n: usize) -> (Tensor, Vec<i64>) {
    let spec = sieve_data::DatasetSpec::parse(&format!(
        "mnist:{}",
        root().join("fixtures/mnist").display()
    ))
    .unwrap();
    let ds = sieve_data::open(
        &spec,
        Split::Test,
        sieve_data::InputSpec {
            channels: 1,
            h: 28,
            w: 28,
        },
    )
    .unwrap();
    let b = ds.read_range(0, n).unwrap();
    (
        Tensor::from_f32(b.shape.to_vec(), b.data).unwrap(),
        b.labels,
    )
}

#[test]
fn live_values_cut_reproduces_the_full_run() {
    let m = sieve_onnx::load_bytes(&model_bytes()).unwrap();
    let (x, _) = images(4);
    let full = m.run(vec![x.clone()]).unwrap();
    for k in 0..m.layers().len() {
        for after in [false, true] {
            let ids = m.live_values(k, after).unwrap();
            assert!(!ids.is_empty());
            let feeds = vec![(m.input_ids()[0], x.clone())];
            let opts = RunOptions {
                targets: Some(ids.clone()),
                ..Default::default()
            };
            let cut = m.run_with(feeds, &opts).unwrap().outputs;
            let r = m
                .run_with(ids.into_iter().zip(cut).collect(), &RunOptions::default())
                .unwrap();
            assert_eq!(
                r.outputs[0].as_f32(),
                full[0].as_f32(),
                "layer {k} after {after}"
            );
        }
    }
}

#[test]
fn design_produces_three_variants_with_consistent_metadata() {
    let (p, _) = package();
    let m = p.meta();
    assert_eq!(m.tensors.len(), 8, "LeNet-5: 4 layers x (weights, output)");
    assert_eq!(m.variants.len(), 3);
    assert_eq!(m.provenance.images, LIMIT);
    assert!(m.baseline.correct as usize >= LIMIT - 2);
    for t in &m.tensors {
        assert!(
            !t.points.is_empty(),
            "tensor {} has no explored point",
            t.name
        );
        assert_eq!(
            t.points[0].format.exp_bits(),
            t.e_max,
            "the sweep starts at e_max"
        );
        assert_eq!(t.points[0].format.man_bits(), 6);
        if t.kind == TensorKind::Weight {
            assert!(t.signed);
        }
    }
    // ip1 is followed by relu1 (fused): its output uses unsigned formats.
    let ip1 = m
        .tensors
        .iter()
        .find(|t| t.kind == TensorKind::Activation && t.name.contains("relu1"))
        .unwrap();
    assert!(!ip1.signed);
    assert!(ip1.points.iter().all(|p| !p.format.signed()));
    for v in &m.variants {
        assert!(
            v.avg_weight_bits < 32.0 && v.avg_weight_bits >= 2.0,
            "{}",
            v.avg_weight_bits
        );
        assert_eq!(v.formats.len(), m.tensors.len());
        assert!(v.weight_bytes > 0 && v.weight_bytes < 431_080 * 4);
    }
}

#[test]
fn package_round_trips_and_variants_match_the_reference_path() {
    let (p, bytes) = package();
    let q = Package::from_bytes(bytes, "test").unwrap();
    assert_eq!(q.meta(), p.meta());
    assert_eq!(
        &q.to_bytes().unwrap(),
        bytes,
        "re-serialisation is bit-identical"
    );
    let (x, labels) = images(LIMIT);
    for v in Variant::SPECULATIVE {
        let packed = q.model(v).unwrap();
        let reference = p.reference_model(v).unwrap();
        let a = packed.run(vec![x.clone()]).unwrap();
        let b = reference.run(vec![x.clone()]).unwrap();
        let (a, b) = (a[0].as_f32().unwrap(), b[0].as_f32().unwrap());
        assert!(
            a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{v}: packed != reference"
        );
        // The same numerics the search scored the variant with.
        let correct = a
            .chunks_exact(10)
            .zip(&labels)
            .filter(|(r, &l)| sieve_design::eval::argmax(r) as i64 == l)
            .count() as u64;
        assert_eq!(
            correct,
            p.meta().variant(v).unwrap().accuracy.correct,
            "{v}"
        );
        assert!(packed.weight_bytes() < 431_080 * 4, "weights stay packed");
    }
    assert!(matches!(
        q.model(Variant::Original),
        Err(DesignError::NoVariant(_))
    ));
}

#[test]
fn reformatted_outputs_differ_from_the_original() {
    let (p, _) = package();
    let (x, _) = images(8);
    let orig = sieve_onnx::load_bytes(&model_bytes())
        .unwrap()
        .run(vec![x.clone()])
        .unwrap();
    let spec = p.model(Variant::Approximate).unwrap().run(vec![x]).unwrap();
    assert_ne!(orig[0].as_f32(), spec[0].as_f32());
}

#[test]
fn resume_after_interruption_gives_the_identical_package() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("m.sieve.journal");
    let r = design(
        &model_bytes(),
        &settings(Some(journal.clone()), Some(9)),
        &|_| {},
    );
    assert!(matches!(r, Err(DesignError::Interrupted(9))), "{r:?}");
    let r = design(
        &model_bytes(),
        &settings(Some(journal.clone()), Some(9)),
        &|_| {},
    );
    assert!(
        matches!(r, Err(DesignError::Interrupted(9))),
        "second slice"
    );
    // Simulate a kill mid-write: a torn last line is ignored.
    let mut text = std::fs::read_to_string(&journal).unwrap();
    text.push_str("w3:s1e");
    std::fs::write(&journal, text).unwrap();
    let out = design(
        &model_bytes(),
        &settings(Some(journal.clone()), None),
        &|_| {},
    )
    .unwrap();
    let total = out.meta.search.points + out.meta.search.combinations;
    assert!(
        out.timing.new_evaluations < total,
        "resumed: {} new of {total}",
        out.timing.new_evaluations
    );
    let resumed = Package::from_outcome(out).to_bytes().unwrap();
    assert_eq!(
        resumed,
        package().1,
        "resumed package differs from the uninterrupted one"
    );
    // A finished journal replays without evaluating anything.
    let again = design(&model_bytes(), &settings(Some(journal), None), &|_| {}).unwrap();
    assert_eq!(again.timing.new_evaluations, 0);
}

fn assert_corrupt(bytes: &[u8], what: &str) {
    match Package::from_bytes(bytes, "x.sieve") {
        Err(DesignError::Corrupt { .. }) | Err(DesignError::Checksum { .. }) => {}
        other => panic!("{what}: expected a corrupt-package error, got {other:?}"),
    }
}

#[test]
fn truncated_packages_are_rejected() {
    let (_, bytes) = package();
    for n in [0, 1, 7, 8, 9, 100, bytes.len() / 2, bytes.len() - 1] {
        assert_corrupt(&bytes[..n], &format!("truncated to {n}"));
    }
}

#[test]
fn corrupted_packages_are_rejected() {
    let (_, bytes) = package();
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    // A flipped bit in every region: header JSON, graph/weight data, last byte.
    for pos in [
        8 + header / 2,
        8 + header + 10,
        bytes.len() / 2,
        bytes.len() - 1,
    ] {
        let mut b = bytes.clone();
        b[pos] ^= 0x10;
        assert_corrupt(&b, &format!("bit flip at {pos}"));
    }
    let err = {
        let mut b = bytes.clone();
        let last = b.len() - 1;
        b[last] ^= 1;
        Package::from_bytes(&b, "x.sieve").unwrap_err()
    };
    assert!(matches!(err, DesignError::Checksum { .. }), "{err}");
    assert!(err.to_string().contains("x.sieve"));
    assert_corrupt(b"not a package at all, just text", "text");
    // A valid safetensors file without the sieve metadata.
    let t =
        safetensors::tensor::TensorView::new(safetensors::Dtype::U8, vec![3], &[1, 2, 3]).unwrap();
    let plain = safetensors::serialize(vec![("a", t)], None).unwrap();
    assert_corrupt(&plain, "plain safetensors");
}

#[test]
fn wrong_version_is_rejected() {
    let (_, bytes) = package();
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let text = String::from_utf8(bytes[8..8 + header].to_vec()).unwrap();
    let patched = text.replacen("{\\\"version\\\":1,", "{\\\"version\\\":9,", 1);
    assert_ne!(
        patched,
        text,
        "version field not found in {}",
        &text[..200.min(text.len())]
    );
    let mut b = bytes[..8].to_vec();
    b.extend_from_slice(patched.as_bytes());
    b.extend_from_slice(&bytes[8 + header..]);
    let err = Package::from_bytes(&b, "v9.sieve").unwrap_err();
    assert!(
        matches!(
            err,
            DesignError::Version {
                found: 9,
                supported: 2,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn calibration_metadata_can_be_added_and_is_checksummed() {
    let (p, _) = package();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.sieve");
    let mut q = p.clone();
    q.update_metadata(
        "detector",
        serde_json::json!({"accurate": {"threshold": 0.75}}),
    );
    q.write(&path).unwrap();
    let r = Package::open(&path).unwrap();
    assert_eq!(
        r.meta().calibration["detector"]["accurate"]["threshold"],
        0.75
    );
    assert_eq!(r.meta().variants, p.meta().variants);
    assert!(matches!(
        Package::open(&dir.path().join("missing.sieve")),
        Err(DesignError::Io { .. })
    ));
}

#[test]
fn report_has_markdown_json_and_plots() {
    let (p, _) = package();
    let dir = tempfile::tempdir().unwrap();
    sieve_design::report::write_report(p.meta(), dir.path()).unwrap();
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("| accurate |"));
    // Each variant's agreement with the original, as recorded in the metadata.
    assert!(md.contains("| agreement |"));
    for v in &p.meta().variants {
        let a = v.agreement().unwrap();
        assert!((0.0..=1.0).contains(&a));
        assert!(md.contains(&format!("| {:.1}% |", 100.0 * a)), "{md}");
    }
    let plots: Vec<_> = std::fs::read_dir(dir.path().join("plots"))
        .unwrap()
        .collect();
    assert_eq!(plots.len(), 2 * p.meta().tensors.len());
    let png = std::fs::read(dir.path().join("plots/000_conv1_W.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let svg = std::fs::read_to_string(dir.path().join("plots/000_conv1_W.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("window"));
}

#[test]
fn default_settings_skip_dominated_points_and_record_agreement() {
    // The defaults include per-channel weight scales: compare with the paper's sweep
    // with scales (the same numerics per point).
    let paper = &scaled_package().0;
    let mut s = settings(None, None);
    s.search = SearchSettings::default_with_batch(16);
    let out = design(&model_bytes(), &s, &|_| {}).unwrap();
    let meta = &out.meta;
    assert!(meta.settings.channel_scales);
    assert!(meta.search.points <= paper.meta().search.points);
    let base = meta.baseline.correct as f64;
    for t in &meta.tensors {
        let mut narrowest_accurate = u32::MAX;
        for p in &t.points {
            // Never evaluated: a point wider than one already meeting 100%.
            assert!(
                p.bits <= narrowest_accurate,
                "{}: {} evaluated after a {narrowest_accurate}-bit accurate point",
                t.name,
                p.format
            );
            if p.correct as f64 >= base - 1e-9 {
                narrowest_accurate = narrowest_accurate.min(p.bits);
            }
            // Agreement is recorded with every figure (a stopped point has none).
            assert_eq!(p.agree.is_none(), p.stopped, "{} {}", t.name, p.format);
            assert!(p.agree.unwrap_or(0) <= meta.provenance.images as u64);
        }
        // Every point the default search evaluated is one the paper's sweep could reach,
        // with the same count (points do not depend on selection settings).
        let pt = &paper.meta().tensors[t.id];
        for p in &t.points {
            if let Some(q) = pt.points.iter().find(|q| q.format == p.format) {
                if !p.stopped && !q.stopped {
                    assert_eq!(q.correct, p.correct, "{} {}", t.name, p.format);
                }
            }
        }
    }
    for v in &meta.variants {
        let agree = v.agree.unwrap();
        assert!(agree <= meta.provenance.images as u64);
    }
}

/// The paper's search with per-channel weight scales, shared by the tests below.
fn scaled_package() -> &'static (Package, Vec<u8>) {
    static P: OnceLock<(Package, Vec<u8>)> = OnceLock::new();
    P.get_or_init(|| {
        let mut st = settings(None, None);
        st.search.channel_scales = true;
        let out = design(&model_bytes(), &st, &|_| {}).unwrap();
        let p = Package::from_outcome(out);
        let bytes = p.to_bytes().unwrap();
        (p, bytes)
    })
}

#[test]
fn channel_scaled_package_round_trips_bit_exact() {
    let (p, bytes) = scaled_package();
    let m = p.meta();
    assert!(m.settings.channel_scales);
    assert_eq!(p.format_version(), 2);
    let scaled: Vec<_> = m
        .tensors
        .iter()
        .filter(|t| t.channel_scales.is_some())
        .collect();
    assert!(
        !scaled.is_empty(),
        "no LeNet-5 weight tensor got channel scales"
    );
    assert!(scaled.iter().all(|t| t.kind == TensorKind::Weight));
    // Every scaled tensor a variant stores packed has its shift tensor, one i8 per
    // channel; the shifts count in the bytes and the average bits.
    for v in &m.variants {
        let mut bytes_total = 0u64;
        let (mut bits, mut n) = (0f64, 0f64);
        for (ti, t) in m.tensors.iter().enumerate() {
            if t.kind != TensorKind::Weight {
                continue;
            }
            let key = v.weight_keys[ti].as_ref().unwrap();
            bytes_total += p.weight_tensors()[key].len() as u64;
            n += t.elements as f64;
            bits += t.elements as f64 * v.formats[ti].map_or(32.0, |f| f64::from(f.width()));
            if let (Some(ch), Some(_)) = (t.channel_scales, v.formats[ti]) {
                assert!(key.ends_with("/cs"), "{key}");
                let sh = &p.weight_tensors()[&format!("{key}.shifts")];
                assert_eq!(sh.len() as u64, ch);
                bytes_total += ch;
                bits += 8.0 * ch as f64;
            }
        }
        assert_eq!(v.weight_bytes, bytes_total, "{}", v.variant);
        assert!((v.avg_weight_bits - bits / n).abs() < 1e-9, "{}", v.variant);
    }
    // Written as version 2; reads back and re-serialises identically.
    assert!(String::from_utf8_lossy(bytes).contains("{\\\"version\\\":2,"));
    let q = Package::from_bytes(bytes, "scaled").unwrap();
    assert_eq!(q.meta(), m);
    assert_eq!(&q.to_bytes().unwrap(), bytes);
    // Packed (shifts applied in the kernels) == reference (decoded f32) bit for bit,
    // and == the search's count; and the scales really change the numerics.
    let (x, labels) = images(LIMIT);
    for v in Variant::SPECULATIVE {
        let a = q.model(v).unwrap().run(vec![x.clone()]).unwrap();
        let b = p.reference_model(v).unwrap().run(vec![x.clone()]).unwrap();
        let (a, b) = (a[0].as_f32().unwrap(), b[0].as_f32().unwrap());
        assert!(
            a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{v}: packed != reference"
        );
        let correct = a
            .chunks_exact(10)
            .zip(&labels)
            .filter(|(r, &l)| sieve_design::eval::argmax(r) as i64 == l)
            .count() as u64;
        assert_eq!(correct, m.variant(v).unwrap().accuracy.correct, "{v}");
    }
    let plain = package().0.meta();
    let differs = m.tensors.iter().zip(&plain.tensors).any(|(a, b)| {
        a.channel_scales.is_some() && (a.histogram != b.histogram || a.points != b.points)
    });
    assert!(
        differs,
        "the scaled tensors were fitted on the unshifted values"
    );
}

/// The speed-ups (sub-batches for the convolutions, reusing the scores of identical
/// networks) leave the package bit for bit as the plain search writes it, also when
/// the run is interrupted and resumed from its journal; and they do take effect here.
#[test]
fn speedups_leave_the_package_unchanged() {
    // Defaults with one exponent width of headroom: weight points of e_max + 1 that
    // quantise exactly as e_max (same bias, unused top binade) repeat earlier ones.
    let fast = |journal: Option<PathBuf>, max_evals: Option<usize>| {
        let mut s = settings(journal, max_evals);
        s.search = SearchSettings::default_with_batch(16);
        s.search.e_headroom = 1;
        s
    };
    let plain = {
        let mut s = fast(None, None);
        s.sub_batch = 0;
        s.reuse_identical = false;
        design(&model_bytes(), &s, &|_| {}).unwrap()
    };
    assert!(!plain.timing.sub_batches);
    assert_eq!(plain.timing.reused_points, 0);
    assert_eq!(plain.timing.reused_combinations, 0);
    let plain_evals = plain.timing.new_evaluations;
    let plain = Package::from_outcome(plain).to_bytes().unwrap();

    let out = design(&model_bytes(), &fast(None, None), &|_| {}).unwrap();
    assert!(
        out.timing.sub_batches,
        "LeNet-5's convolutions are batch-invariant"
    );
    assert!(out.timing.reused_points > 0, "{:?}", out.timing);
    assert_eq!(out.timing.layers.len(), 4, "LeNet-5 has 4 compute layers");
    let swept: usize = out
        .timing
        .layers
        .iter()
        .map(|l| l.weight_evals + l.activation_evals)
        .sum();
    assert_eq!(
        swept + out.timing.reused_points,
        out.meta.search.points,
        "per-layer counts"
    );
    assert_eq!(
        out.timing.new_evaluations + out.timing.reused_points + out.timing.reused_combinations,
        plain_evals,
        "every evaluation is either run or reused"
    );
    assert_eq!(Package::from_outcome(out).to_bytes().unwrap(), plain);

    // Whole batches with reuse, and sub-batches without: the same package.
    for (sub, reuse) in [(0, true), (3, false)] {
        let mut s = fast(None, None);
        s.sub_batch = sub;
        s.reuse_identical = reuse;
        let out = design(&model_bytes(), &s, &|_| {}).unwrap();
        assert_eq!(out.timing.sub_batches, sub > 0);
        assert_eq!(
            Package::from_outcome(out).to_bytes().unwrap(),
            plain,
            "sub-batch {sub}, reuse {reuse}"
        );
    }

    // Sub-batches by stage: 2 images through conv1 (46 KB per image), 4 through conv2
    // (12.8 KB), re-split between them; and with the shorter last batch.
    for limit in [None, Some(45)] {
        let mut s = fast(None, None);
        s.sub_batch_bytes = 100_000;
        if limit.is_some() {
            s.limit = limit;
        }
        let out = design(&model_bytes(), &s, &|_| {}).unwrap();
        assert_eq!(out.timing.sub_batch_plan, vec![(0, 2), (1, 4)]);
        let bytes = Package::from_outcome(out).to_bytes().unwrap();
        if limit.is_none() {
            assert_eq!(bytes, plain, "sub-batches by stage");
        } else {
            let mut s = fast(None, None);
            s.limit = limit;
            s.sub_batch = 0;
            let whole = design(&model_bytes(), &s, &|_| {}).unwrap();
            assert_eq!(
                bytes,
                Package::from_outcome(whole).to_bytes().unwrap(),
                "45 images by stage"
            );
        }
    }

    // The prefix cache's budget (none; some cuts; all) only moves where runs start.
    for budget in [0, 1 << 20] {
        let mut s = fast(None, None);
        s.cache_bytes = budget;
        let out = design(&model_bytes(), &s, &|_| {}).unwrap();
        assert_eq!(
            Package::from_outcome(out).to_bytes().unwrap(),
            plain,
            "cache budget {budget}"
        );
    }

    // A shorter last batch (45 = 16 + 16 + 13) splits into other sub-batch sizes.
    let short = |sub: usize| {
        let mut s = fast(None, None);
        s.limit = Some(45);
        s.sub_batch = sub;
        let out = design(&model_bytes(), &s, &|_| {}).unwrap();
        assert_eq!(out.timing.sub_batches, sub > 0);
        Package::from_outcome(out).to_bytes().unwrap()
    };
    assert_eq!(short(3), short(0), "45 images, sub-batches of 3");

    // Interrupted twice and resumed: reused scores are journalled like evaluated ones.
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("f.sieve.journal");
    for _ in 0..2 {
        let r = design(
            &model_bytes(),
            &fast(Some(journal.clone()), Some(7)),
            &|_| {},
        );
        assert!(matches!(r, Err(DesignError::Interrupted(7))), "{r:?}");
    }
    let out = design(&model_bytes(), &fast(Some(journal.clone()), None), &|_| {}).unwrap();
    assert_eq!(Package::from_outcome(out).to_bytes().unwrap(), plain);
    let again = design(&model_bytes(), &fast(Some(journal), None), &|_| {}).unwrap();
    assert_eq!(again.timing.new_evaluations, 0);
}

/// `min_agreement` keeps recovering the exact and accurate variants until their answers
/// equal the original's on that share of the images, not only their accuracy; the
/// approximate variant's goal is unchanged.
#[test]
fn min_agreement_recovers_until_the_answers_agree() {
    let mut s = settings(None, None);
    s.limit = None;
    s.search = SearchSettings::default_with_batch(50);
    let plain = design(&model_bytes(), &s, &|_| {}).unwrap().meta;
    let images = plain.provenance.images as u64;
    let variant = |m: &sieve_design::meta::Meta, v: Variant| {
        m.variants.iter().find(|x| x.variant == v).unwrap().clone()
    };
    // Precondition (else the test proves nothing): on accuracy alone the accurate
    // variant changes some answers.
    let acc = variant(&plain, Variant::Accurate);
    assert!(
        acc.agree.unwrap() < images,
        "accurate already agrees everywhere: {:?}",
        plain.variants
    );
    s.search.min_agreement = Some(1.0);
    // The default has no step limit with doubling recovery: every tensor may end at
    // f32 (which agrees everywhere).
    assert_eq!(s.search.max_recovery_steps, None);
    let events = std::sync::Mutex::new(vec![]);
    let strict = design(&model_bytes(), &s, &|e| {
        events.lock().unwrap().push(e.clone());
    })
    .unwrap()
    .meta;
    let tensors = strict.tensors.len();
    // The progress count follows the recovery: each of its evaluations adds one to
    // done and total, done never goes back, never passes total, and ends equal to it.
    let events = events.into_inner().unwrap();
    // Phases before the count is known come first, with total 0.
    let phases = events.iter().take_while(|e| e.total == 0).count();
    assert!(
        events[..phases]
            .iter()
            .any(|e| e.what.starts_with("baseline")),
        "{:?}",
        &events[..phases]
    );
    let events = &events[phases..];
    assert!(events.iter().all(|e| e.total > 0));
    let (first, last) = (events.first().unwrap(), events.last().unwrap());
    for w in events.windows(2) {
        assert!(w[1].done >= w[0].done && w[1].total >= w[0].total, "{w:?}");
    }
    assert!(events.iter().all(|e| e.done <= e.total));
    assert_eq!(last.done, last.total, "{last:?}");
    let steps = events
        .iter()
        .filter(|e| e.what.contains("recovery"))
        .count();
    assert!(steps > 0, "no recovery in the progress events");
    assert!(
        last.total >= first.total + steps,
        "{first:?} {last:?} {steps}"
    );
    // It needs more widenings than the old default limit (twice the tensors) allowed.
    assert!(
        strict
            .variants
            .iter()
            .any(|v| v.recovered.len() > 2 * tensors),
        "{:?}",
        strict.variants
    );
    assert_eq!(strict.settings.min_agreement, Some(1.0));
    for v in [Variant::Exact, Variant::Accurate] {
        let x = variant(&strict, v);
        assert_eq!(x.agree, Some(images), "{v}: {:?}", x.recovered);
        assert!(x.normalised >= 1.0 - s.search.recovery_slack - 1e-9);
    }
    let apx = variant(&strict, Variant::Approximate);
    let goal = s.search.approximate_threshold - s.search.recovery_slack;
    assert!(apx.normalised >= goal - 1e-9);
    // Packages without the setting serialise without it (older readers, same bytes).
    let json = serde_json::to_string(&plain.settings).unwrap();
    assert!(!json.contains("min_agreement"), "{json}");
}

/// Stopping evaluations early (the default) changes no choice: the same formats and
/// variants (figures included) as with every point scored whole; a stopped point is
/// one whose whole score is under the sweep floor; the journal of either run gives
/// the other's package.
#[test]
fn stopping_early_leaves_the_choices_unchanged() {
    let run = |stop: bool, journal: Option<PathBuf>| {
        let mut s = settings(journal, None);
        s.limit = Some(200);
        s.search = SearchSettings::default_with_batch(16);
        s.stop_early = stop;
        design(&model_bytes(), &s, &|_| {}).unwrap()
    };
    let whole = run(false, None);
    let early = run(true, None);
    assert_eq!(whole.timing.stopped_points, 0);
    // Preconditions (else the test proves little): points stopped, and a choice needed
    // the whole score of one of them (it is then recorded whole).
    assert!(
        early.timing.stopped_points > 0 && early.timing.completed_points > 0,
        "{:?}",
        early.timing
    );
    let (w, e) = (&whole.meta, &early.meta);
    assert_eq!(w.variants, e.variants);
    let base = w.baseline.correct as f64;
    let floor = w.settings.sweep_floor;
    let mut stopped = 0;
    for (tw, te) in w.tensors.iter().zip(&e.tensors) {
        assert_eq!(tw.points.len(), te.points.len(), "{}", tw.name);
        for (pw, pe) in tw.points.iter().zip(&te.points) {
            assert_eq!(pw.format, pe.format);
            assert!(!pw.stopped);
            if pe.stopped {
                stopped += 1;
                assert!(
                    (pw.correct as f64) < floor * base,
                    "{} {}: stopped but {} of {base} correct",
                    tw.name,
                    pw.format,
                    pw.correct
                );
                assert_eq!((pe.correct, pe.agree), (0, None));
            } else {
                assert_eq!(pw, pe, "{}", tw.name);
            }
        }
    }
    assert_eq!(
        stopped,
        early.timing.stopped_points - early.timing.completed_points
    );

    // Either journal gives the other setting's package.
    let whole_bytes = Package::from_outcome(whole).to_bytes().unwrap();
    let early_bytes = Package::from_outcome(early).to_bytes().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (first, then, want) in [(false, true, &early_bytes), (true, false, &whole_bytes)] {
        let journal = dir.path().join(format!("{first}.journal"));
        run(first, Some(journal.clone()));
        let out = run(then, Some(journal));
        assert_eq!(
            &Package::from_outcome(out).to_bytes().unwrap(),
            want,
            "journal of stop_early={first}, run with {then}"
        );
    }
}

/// Fragile first: the same scores as the dataset's order, and an evaluation that cannot
/// reach its need stops after the batches holding the original's wrong answers instead
/// of wherever they lie in the dataset. One thread, so that where it stops does not
/// depend on scheduling.
#[test]
fn fragile_first_keeps_scores_and_stops_shortfalls_sooner() {
    use sieve_design::eval::{Evaluator, Need};
    let m = sieve_onnx::load_bytes(&model_bytes()).unwrap();
    let (x, labels) = images(1000);
    let batch = 16;
    let batches = || {
        labels
            .chunks(batch)
            .enumerate()
            .map(|(i, l)| {
                let per = 28 * 28;
                let d = x.as_f32().unwrap()[i * batch * per..(i * batch + l.len()) * per].to_vec();
                (
                    Tensor::from_f32(vec![l.len(), 1, 28, 28], d).unwrap(),
                    l.to_vec(),
                )
            })
            .collect::<Vec<_>>()
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    pool.install(|| {
        let mut dataset = Evaluator::new(&m, batches(), 0, 1 << 30).unwrap();
        let base = dataset.baseline(&m, &[]).unwrap().0;
        let mut fragile = Evaluator::new(&m, batches(), 0, 1 << 30).unwrap();
        assert_eq!(fragile.baseline(&m, &[]).unwrap().0, base);
        assert_eq!(fragile.fragile_first(&m).unwrap(), base);
        let wrong = 1000 - base;
        // Preconditions: some wrong answers, fewer than a batch holds, not all in the
        // dataset's first batch.
        assert!(wrong > 0 && wrong as usize <= batch, "{wrong} wrong");
        // Whole scores and a reachable need: the same either way.
        for ev in [&dataset, &fragile] {
            let whole = ev.score(&m, ev.base(), None, None).unwrap();
            assert_eq!(whole.correct, base);
            assert_eq!(whole.agree, 1000);
            let need = Need {
                correct: base,
                agree: 1000,
            };
            assert_eq!(
                ev.score_until(&m, ev.base(), None, None, Some(need))
                    .unwrap(),
                Some(whole)
            );
        }
        // One more correct answer than the original: out of reach, decided once every
        // wrong answer has been seen.
        let need = Some(Need {
            correct: base + 1,
            agree: 0,
        });
        let run = |ev: &Evaluator| {
            let before = ev.images_run();
            assert_eq!(
                ev.score_until(&m, ev.base(), None, None, need).unwrap(),
                None
            );
            ev.images_run() - before
        };
        assert_eq!(
            run(&fragile),
            batch as u64,
            "the first batch holds them all"
        );
        let in_order = run(&dataset);
        assert!(
            in_order > 4 * batch as u64,
            "{in_order} images in the dataset's order"
        );
    });
}
