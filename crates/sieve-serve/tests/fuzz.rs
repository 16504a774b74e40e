//! Fuzzing the REST request parser and the binary-extension decoder (both directions).
//!
//! Core tests: proptest with a few hundred cases (fast). Extended: a time-bounded mutation
//! fuzzer seeded with valid JSON and binary requests (`SIEVE_FUZZ_SECS`, default 30 s), run
//! by CI with `--ignored`. The property in both: every input is answered with `Ok` or an
//! `InvalidArgument`-class error (HTTP 400) — never a panic, hang or huge allocation.

#![allow(clippy::unwrap_used, clippy::panic)]

use bytes::Bytes;
use proptest::prelude::*;
use sieve_serve::codec::{encode_infer_request, parse_infer_request, parse_infer_response};
use sieve_serve::{DataType, InferTensor};
use std::time::{Duration, Instant};

fn check_request(body: &[u8], header_len: Option<&str>) {
    let body = Bytes::copy_from_slice(body);
    if let Err(e) = parse_infer_request(&body, header_len) {
        assert_eq!(e.http_status(), 400, "{e}");
        assert!(!e.to_string().is_empty());
    }
    if let Err(e) = parse_infer_response(&body, header_len) {
        assert_eq!(e.http_status(), 400, "{e}");
    }
}

fn seeds() -> Vec<(Vec<u8>, Option<String>)> {
    let mut out = Vec::new();
    let a = InferTensor::from_f32("x", vec![2, 3], &[1.0, -2.5, 3.0, 0.0, 1e-9, 7.0]).unwrap();
    let b =
        InferTensor::from_json("n", DataType::I64, vec![2], &serde_json::json!([1, -2])).unwrap();
    let s = InferTensor::from_json(
        "s",
        DataType::Bytes,
        vec![2],
        &serde_json::json!(["ab", "c"]),
    )
    .unwrap();
    for binary in [false, true] {
        let (raw, hl) = encode_infer_request(
            Some("id"),
            &[a.clone(), b.clone(), s.clone()],
            &["y"],
            binary,
        );
        out.push((raw, hl.map(|n| n.to_string())));
    }
    out.push((
        br#"{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP16","data":[[1.5,"NaN"]]}],"outputs":[{"name":"y","parameters":{"binary_data":true}}],"parameters":{"timeout":100}}"#.to_vec(),
        None,
    ));
    out.push((
        br#"{"model_name":"m","outputs":[{"name":"y","shape":[1],"datatype":"BOOL","data":[true]}]}"#.to_vec(),
        None,
    ));
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512), hl in proptest::option::of(0usize..600)) {
        check_request(&body, hl.map(|n| n.to_string()).as_deref());
    }

    #[test]
    fn arbitrary_json_shapes_never_panic(
        dims in proptest::collection::vec(-3i64..1_000_000_000_000, 0..5),
        dt in proptest::sample::select(DataType::ALL.to_vec()),
        n in 0usize..20,
        size in proptest::option::of(0u64..u64::MAX),
    ) {
        let data: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        let params = size.map(|s| format!(r#","parameters":{{"binary_data_size":{s}}}"#)).unwrap_or_default();
        let data_field = if size.is_some() { String::new() } else { format!(r#","data":[{}]"#, data.join(",")) };
        let body = format!(
            r#"{{"inputs":[{{"name":"x","shape":{dims:?},"datatype":"{}"{params}{data_field}}}]}}"#,
            dt.name()
        );
        let json_len = body.len();
        let mut raw = body.into_bytes();
        raw.extend(std::iter::repeat_n(0u8, n * 4));
        check_request(&raw, Some(&json_len.to_string()));
        check_request(&raw[..json_len], None);
    }

    #[test]
    fn valid_requests_round_trip(
        rows in 1usize..4, cols in 1usize..5, binary in any::<bool>(),
        vals in proptest::collection::vec(-1e6f32..1e6, 20),
    ) {
        let v: Vec<f32> = vals.iter().cycle().take(rows * cols).copied().collect();
        let t = InferTensor::from_f32("x", vec![rows, cols], &v).unwrap();
        let (raw, hl) = encode_infer_request(None, std::slice::from_ref(&t), &[], binary);
        let r = parse_infer_request(&Bytes::from(raw), hl.map(|n| n.to_string()).as_deref()).unwrap();
        prop_assert_eq!(&r.inputs[0], &t);
    }
}

/// xorshift64*: a dependency-free generator for the mutation loop.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\"",
    b"-1",
    b"1e308",
    b"18446744073709551616",
    b"null",
    b"true",
    b"\"NaN\"",
    b"\"binary_data_size\"",
    b"\"shape\"",
    b"\"data\"",
    b"\"BYTES\"",
    b"\"FP16\"",
    b"[[[[[[[[",
    b"\xff\xff\xff\x7f",
    b"\"inputs\"",
];

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let pos = rng.below(v.len() + 1);
        match rng.below(6) {
            0 if !v.is_empty() => {
                let p = rng.below(v.len());
                v[p] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let p = rng.below(v.len());
                v.remove(p);
            }
            2 => v.truncate(pos),
            3 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                v.splice(pos..pos, t.iter().copied());
            }
            4 if !v.is_empty() => {
                let p = rng.below(v.len());
                v[p] = (rng.next() & 0xff) as u8;
            }
            _ => {
                let a = rng.below(v.len() + 1);
                let b = rng.below(v.len() + 1);
                let (a, b) = (a.min(b), a.max(b));
                let chunk = v[a..b].to_vec();
                v.splice(pos.min(v.len())..pos.min(v.len()), chunk);
            }
        }
    }
    v
}

#[test]
#[ignore = "fuzz: bounded mutation run (SIEVE_FUZZ_SECS, default 30)"]
fn bounded_mutation_fuzz() {
    let secs: u64 = std::env::var("SIEVE_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let until = Instant::now() + Duration::from_secs(secs);
    let seeds = seeds();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut runs, mut accepted) = (0u64, 0u64);
    while Instant::now() < until {
        for _ in 0..256 {
            let (seed, hl) = &seeds[rng.below(seeds.len())];
            let body = mutate(&mut rng, seed);
            let hl = match (hl, rng.below(4)) {
                (Some(h), 0..=1) => Some(h.clone()),
                (_, 2) => Some(rng.below(body.len() + 8).to_string()),
                _ => None,
            };
            let bytes = Bytes::from(body.clone());
            if parse_infer_request(&bytes, hl.as_deref()).is_ok() {
                accepted += 1;
            }
            check_request(&body, hl.as_deref());
            runs += 1;
        }
    }
    println!("fuzz: {runs} inputs in {secs} s, {accepted} parsed as valid requests, no crash");
    assert!(runs > 1000, "only {runs} inputs tried");
    assert!(
        accepted > 0,
        "the mutator never produced a valid request; seeds broken?"
    );
}
