//! libFuzzer target: the REST request parser and binary-extension decoder. The first byte
//! chooses whether (and which) Inference-Header-Content-Length accompanies the body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else { return };
    let body = bytes::Bytes::copy_from_slice(body);
    let header = (sel & 1 == 1).then(|| (usize::from(sel >> 1) * body.len() / 127).to_string());
    if let Err(e) = sieve_serve::codec::parse_infer_request(&body, header.as_deref()) {
        assert_eq!(e.http_status(), 400);
    }
    if let Err(e) = sieve_serve::codec::parse_infer_response(&body, header.as_deref()) {
        assert_eq!(e.http_status(), 400);
    }
});
