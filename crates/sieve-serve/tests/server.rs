//! In-process server tests (port 0, shutdown future): protocol endpoints, every malformed
//! request class, faults, back-pressure, graceful shutdown, auth, metrics, batching.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::*;
use sieve_serve::client::{Client, ClientConfig, Protocol};
use sieve_serve::grpc::grpc_inference_service_client::GrpcInferenceServiceClient;
use sieve_serve::grpc::model_infer_request::InferInputTensor;
use sieve_serve::grpc::{InferTensorContents, ModelInferRequest};
use sieve_serve::{ServeConfig, ServeError};
use std::time::{Duration, Instant};

fn expected_y(rows: usize) -> Vec<f32> {
    (0..rows * 4).map(|i| i as f32).collect()
}

#[tokio::test]
async fn rest_endpoints_and_infer_json_and_binary() {
    let d = Doubler::new(0);
    let srv = start(d.clone()).await;
    let (st, body) = get(srv.rest, "/v2/health/live", "").await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(get(srv.rest, "/v2/health/ready", "").await.0, 200);
    let (st, body) = get(srv.rest, "/v2", "").await;
    assert_eq!(st, 200);
    assert!(json_body(&body)["extensions"]
        .to_string()
        .contains("binary_tensor_data"));
    let (st, body) = get(srv.rest, "/v2/models/dbl", "").await;
    assert_eq!(st, 200);
    let meta = json_body(&body);
    assert_eq!(meta["inputs"][0]["shape"], serde_json::json!([-1, 4]));
    assert_eq!(meta["outputs"][1]["name"], "s");
    assert_eq!(get(srv.rest, "/v2/models/dbl/versions/1", "").await.0, 200);
    assert_eq!(get(srv.rest, "/v2/models/dbl/ready", "").await.0, 200);
    assert_eq!(
        get(srv.rest, "/v2/models/dbl/versions/7/ready", "").await.0,
        400
    );

    for protocol in [Protocol::Rest, Protocol::RestJson] {
        let c = Client::new(
            &srv.rest_url(),
            ClientConfig {
                protocol,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(c.live().await.unwrap());
        assert!(c.ready().await.unwrap());
        assert_eq!(c.model_metadata("dbl").await.unwrap().inputs[0].name, "x");
        let r = c.infer("dbl", &[x(3)]).await.unwrap();
        assert_eq!(r.protocol, protocol);
        assert_eq!(r.attempts, 1);
        assert!(r.rtt > Duration::ZERO && r.rtt <= r.total);
        assert_eq!(r.outputs[0].shape, vec![3, 4]);
        assert_eq!(r.outputs[0].to_f32().unwrap(), expected_y(3));
        assert_eq!(r.outputs[1].to_f32().unwrap(), vec![3.0, 11.0, 19.0]);
    }

    // Requested output subset, one binary, one JSON, as tritonclient asks for them.
    let req =
        br#"{"id":"q1","inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}],
        "outputs":[{"name":"s","parameters":{"binary_data":true}}]}"#;
    let (st, text) = post(srv.rest, "/v2/models/dbl/infer", "", req).await;
    assert_eq!(st, 200, "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("inference-header-content-length"),
        "{text}"
    );
    assert!(text.contains("\"id\":\"q1\""), "{text}");
    assert!(text.contains("\"binary_data_size\":4"), "{text}");
    assert!(text.ends_with(&String::from_utf8_lossy(&10f32.to_le_bytes()).into_owned()));
    srv.stop().await;
}

#[tokio::test]
async fn grpc_infer_fills_raw_output_contents_and_accepts_typed_contents() {
    let srv = start(Doubler::new(0)).await;
    let c = Client::new(
        &srv.grpc_url(),
        ClientConfig {
            protocol: Protocol::Grpc,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(c.live().await.unwrap() && c.ready().await.unwrap());
    assert_eq!(c.model_metadata("dbl").await.unwrap().outputs.len(), 2);
    let r = c.infer("dbl", &[x(2)]).await.unwrap();
    assert_eq!(r.outputs[0].to_f32().unwrap(), expected_y(2));

    let mut g = GrpcInferenceServiceClient::connect(srv.grpc_url())
        .await
        .unwrap();
    let typed = ModelInferRequest {
        model_name: "dbl".into(),
        inputs: vec![InferInputTensor {
            name: "x".into(),
            datatype: "FP32".into(),
            shape: vec![1, 4],
            contents: Some(InferTensorContents {
                fp32_contents: vec![1.0, 2.0, 3.0, 4.0],
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let resp = g.model_infer(typed.clone()).await.unwrap().into_inner();
    assert_eq!(resp.raw_output_contents.len(), 2);
    assert_eq!(resp.raw_output_contents[1], 10f32.to_le_bytes().to_vec());
    assert!(resp.outputs.iter().all(|o| o.contents.is_none()));

    let mut bad = typed.clone();
    bad.inputs[0].shape = vec![1, 5];
    let st = g.model_infer(bad).await.unwrap_err();
    assert_eq!(st.code(), tonic::Code::InvalidArgument, "{st:?}");
    let mut unknown = typed.clone();
    unknown.model_name = "nope".into();
    let st = g.model_infer(unknown).await.unwrap_err();
    assert_eq!(st.code(), tonic::Code::InvalidArgument);
    assert!(st.message().contains("nope"));
    let mut nan = typed;
    nan.inputs[0].contents.as_mut().unwrap().fp32_contents[2] = f32::NAN;
    let st = g.model_infer(nan).await.unwrap_err();
    assert_eq!(st.code(), tonic::Code::InvalidArgument);
    assert!(st.message().contains("NaN"), "{}", st.message());
    srv.stop().await;
}

#[tokio::test]
async fn every_malformed_request_gets_400_with_a_message() {
    let srv = start(Doubler::new(0)).await;
    let ok_in = r#"{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}"#;
    let cases: Vec<(&str, String, &str, Vec<u8>, &str)> = vec![
        (
            "bad json",
            "/v2/models/dbl/infer".into(),
            "",
            b"{\"inputs\": [".to_vec(),
            "JSON",
        ),
        (
            "unknown model",
            "/v2/models/nope/infer".into(),
            "",
            format!(r#"{{"inputs":[{ok_in}]}}"#).into_bytes(),
            "unknown model 'nope'",
        ),
        (
            "wrong datatype",
            "/v2/models/dbl/infer".into(),
            "",
            br#"{"inputs":[{"name":"x","shape":[1,4],"datatype":"INT32","data":[1,2,3,4]}]}"#
                .to_vec(),
            "INT32",
        ),
        (
            "wrong shape",
            "/v2/models/dbl/infer".into(),
            "",
            br#"{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[1,2,3,4]}]}"#
                .to_vec(),
            "shape",
        ),
        (
            "count mismatch",
            "/v2/models/dbl/infer".into(),
            "",
            br#"{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3]}]}"#.to_vec(),
            "needs 4",
        ),
        (
            "unknown input",
            "/v2/models/dbl/infer".into(),
            "",
            br#"{"inputs":[{"name":"z","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}"#
                .to_vec(),
            "no input 'z'",
        ),
        (
            "unknown output",
            "/v2/models/dbl/infer".into(),
            "",
            format!(r#"{{"inputs":[{ok_in}],"outputs":[{{"name":"q"}}]}}"#).into_bytes(),
            "no output 'q'",
        ),
        (
            "NaN",
            "/v2/models/dbl/infer".into(),
            "",
            br#"{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,"NaN",3,4]}]}"#
                .to_vec(),
            "NaN",
        ),
        (
            "missing input",
            "/v2/models/dbl/infer".into(),
            "",
            br#"{"inputs":[]}"#.to_vec(),
            "missing",
        ),
    ];
    for (what, path, extra, body, needle) in cases {
        let (st, text) = post(srv.rest, &path, extra, &body).await;
        assert_eq!(st, 400, "{what}: {text}");
        let msg = json_body(&text)["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            msg.contains(needle),
            "{what}: error '{msg}' lacks '{needle}'"
        );
    }
    // Binary size mismatch: header says 16 bytes of FP32 but only 12 follow.
    let json = br#"{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":16}}]}"#;
    let mut body = json.to_vec();
    body.extend_from_slice(&[0u8; 12]);
    let extra = format!("Inference-Header-Content-Length: {}\r\n", json.len());
    let (st, text) = post(srv.rest, "/v2/models/dbl/infer", &extra, &body).await;
    assert_eq!(st, 400, "{text}");
    assert!(
        json_body(&text)["error"]
            .as_str()
            .unwrap()
            .contains("binary_data_size"),
        "{text}"
    );
    // Header length past the body.
    let (st, _) = post(
        srv.rest,
        "/v2/models/dbl/infer",
        "Inference-Header-Content-Length: 99999\r\n",
        json,
    )
    .await;
    assert_eq!(st, 400);
    // Unknown route and wrong method.
    assert_eq!(get(srv.rest, "/v3/whatever", "").await.0, 404);
    assert_eq!(get(srv.rest, "/v2/models/dbl/infer", "").await.0, 404);
    // Still healthy afterwards.
    assert_eq!(get(srv.rest, "/v2/health/ready", "").await.0, 200);
    srv.stop().await;
}

#[tokio::test]
async fn size_limits_and_slow_bodies() {
    let mut cfg = test_config();
    cfg.limits.max_body_bytes = 1000;
    cfg.limits.body_timeout = Duration::from_millis(300);
    cfg.limits.header_timeout = Duration::from_millis(300);
    cfg.limits.max_tensor_elements = 16;
    let srv = start_with(cfg, Doubler::new(0)).await;
    let (st, text) = post(srv.rest, "/v2/models/dbl/infer", "", &vec![b' '; 5000]).await;
    assert_eq!(st, 413, "{text}");
    let data: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    let body = format!(
        r#"{{"inputs":[{{"name":"x","shape":[5,4],"datatype":"FP32","data":[{}]}}]}}"#,
        data.join(",")
    );
    let (st, text) = post(srv.rest, "/v2/models/dbl/infer", "", body.as_bytes()).await;
    assert_eq!(st, 400, "{text}");
    // A body that never finishes: answered 408 once the body timeout passes.
    let start = Instant::now();
    let (st, _) = raw_http(
        srv.rest,
        b"POST /v2/models/dbl/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"inp",
    )
    .await;
    assert_eq!(st, 408);
    assert!(start.elapsed() < Duration::from_secs(3));
    // Headers that never finish: the connection is closed after the header timeout.
    let start = Instant::now();
    let (st, _) = raw_http(srv.rest, b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n").await;
    assert_ne!(st, 200);
    assert!(start.elapsed() < Duration::from_secs(3));
    srv.stop().await;
}

#[tokio::test]
async fn client_disconnect_mid_request_is_harmless() {
    let d = Doubler::new(200);
    let srv = start(d.clone()).await;
    {
        // Half a body, then gone.
        use tokio::io::AsyncWriteExt;
        let mut s = tokio::net::TcpStream::connect(srv.rest).await.unwrap();
        s.write_all(b"POST /v2/models/dbl/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{\"inputs\"")
            .await
            .unwrap();
    }
    {
        // Full request, gone while it waits in the queue behind a running one.
        let c = Client::new(&srv.rest_url(), ClientConfig::default()).unwrap();
        let busy = tokio::spawn(async move { c.infer("dbl", &[x(1)]).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let body = br#"{"inputs":[{"name":"x","shape":[2,4],"datatype":"FP32","data":[1,2,3,4,5,6,7,8]}]}"#;
        let mut req = format!(
            "POST /v2/models/dbl/infer HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        use tokio::io::AsyncWriteExt;
        let mut s = tokio::net::TcpStream::connect(srv.rest).await.unwrap();
        s.write_all(&req).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        drop(s);
        assert!(busy.await.unwrap().is_ok());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = Client::new(&srv.rest_url(), ClientConfig::default()).unwrap();
    assert_eq!(
        c.infer("dbl", &[x(1)]).await.unwrap().outputs[0].shape,
        vec![1, 4]
    );
    srv.stop().await;
}

#[tokio::test]
async fn full_queue_answers_503_and_resource_exhausted() {
    let mut cfg = test_config();
    cfg.batch.max_batch = 1;
    cfg.batch.queue_capacity = 1;
    let srv = start_with(cfg, Doubler::new(300)).await;
    let no_retry = ClientConfig {
        retries: 0,
        ..Default::default()
    };
    let rest = std::sync::Arc::new(Client::new(&srv.rest_url(), no_retry.clone()).unwrap());
    let grpc = std::sync::Arc::new(
        Client::new(
            &srv.grpc_url(),
            ClientConfig {
                protocol: Protocol::Grpc,
                ..no_retry
            },
        )
        .unwrap(),
    );
    let mut tasks = Vec::new();
    for i in 0..8 {
        let c = if i % 2 == 0 {
            rest.clone()
        } else {
            grpc.clone()
        };
        tasks.push(tokio::spawn(async move { c.infer("dbl", &[x(1)]).await }));
    }
    let (mut ok, mut rest_full, mut grpc_full) = (0, 0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(ServeError::Status {
                status, retryable, ..
            }) => {
                assert!(retryable);
                match status.as_str() {
                    "503" => rest_full += 1,
                    "ResourceExhausted" => grpc_full += 1,
                    s => panic!("unexpected status {s}"),
                }
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(
        ok >= 1 && rest_full + grpc_full >= 4,
        "ok {ok} 503 {rest_full} RE {grpc_full}"
    );
    assert!(
        rest_full >= 1 && grpc_full >= 1,
        "503 {rest_full} RE {grpc_full}"
    );
    // With retries and back-off the same burst eventually succeeds.
    let patient = Client::new(
        &srv.rest_url(),
        ClientConfig {
            retries: 8,
            backoff: Duration::from_millis(100),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(patient.infer("dbl", &[x(1)]).await.is_ok());
    srv.stop().await;
}

#[tokio::test]
async fn shutdown_answers_in_flight_requests_and_refuses_new_ones() {
    let mut cfg = test_config();
    cfg.batch.max_batch = 1;
    let d = Doubler::new(150);
    let mut srv = start_with(cfg, d.clone()).await;
    let rest = std::sync::Arc::new(Client::new(&srv.rest_url(), ClientConfig::default()).unwrap());
    let grpc = std::sync::Arc::new(
        Client::new(
            &srv.grpc_url(),
            ClientConfig {
                protocol: Protocol::Grpc,
                ..Default::default()
            },
        )
        .unwrap(),
    );
    let mut tasks = Vec::new();
    for i in 0..6 {
        let c = if i % 2 == 0 {
            rest.clone()
        } else {
            grpc.clone()
        };
        tasks.push(tokio::spawn(async move { c.infer("dbl", &[x(1)]).await }));
    }
    tokio::time::sleep(Duration::from_millis(80)).await;
    srv.trigger_stop();
    for t in tasks {
        let r = t.await.unwrap();
        assert!(
            r.is_ok(),
            "in-flight request lost at shutdown: {:?}",
            r.err()
        );
    }
    let rest_addr = srv.rest;
    srv.stop().await;
    assert_eq!(d.calls(), 6);
    let late = Client::new(
        &format!("http://{rest_addr}"),
        ClientConfig {
            retries: 0,
            ..Default::default()
        },
    )
    .unwrap();
    let e = late.infer("dbl", &[x(1)]).await.unwrap_err();
    assert!(matches!(e, ServeError::Connect { .. }), "{e}");
}

#[tokio::test]
async fn killed_or_hung_server_gives_a_clear_error_within_the_timeout() {
    // Nothing listening: connection refused, retried, then a Connect error.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = ClientConfig {
        timeout: Duration::from_millis(300),
        retries: 2,
        backoff: Duration::from_millis(10),
        ..Default::default()
    };
    let c = Client::new(&format!("http://127.0.0.1:{port}"), cfg.clone()).unwrap();
    let e = c.infer("dbl", &[x(1)]).await.unwrap_err();
    assert!(matches!(e, ServeError::Connect { .. }), "{e}");
    // A server that accepts and never answers (killed mid-request / hung): Timeout, bounded.
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = hung.local_addr().unwrap();
    let keeper = tokio::spawn(async move {
        let mut socks = Vec::new();
        while let Ok((s, _)) = hung.accept().await {
            socks.push(s);
        }
    });
    for protocol in [Protocol::Rest, Protocol::Grpc] {
        let c = Client::new(
            &format!("http://{addr}"),
            ClientConfig {
                protocol,
                ..cfg.clone()
            },
        )
        .unwrap();
        let start = Instant::now();
        let e = c.infer("dbl", &[x(1)]).await.unwrap_err();
        assert!(matches!(e, ServeError::Timeout { .. }), "{protocol:?}: {e}");
        assert!(
            start.elapsed() < Duration::from_millis(3 * 300 + 500),
            "{:?}",
            start.elapsed()
        );
    }
    keeper.abort();
    // A real server stopped under the client: the next call fails fast and clearly.
    let srv = start(Doubler::new(0)).await;
    let c = Client::new(&srv.rest_url(), cfg).unwrap();
    assert!(c.infer("dbl", &[x(1)]).await.is_ok());
    srv.stop().await;
    let e = c.infer("dbl", &[x(1)]).await.unwrap_err();
    assert!(matches!(e, ServeError::Connect { .. }), "{e}");
}

#[tokio::test]
async fn bearer_token_guards_everything_but_health() {
    let cfg = ServeConfig {
        auth_token: Some("s3cret".into()),
        ..test_config()
    };
    let srv = start_with(cfg, Doubler::new(0)).await;
    assert_eq!(get(srv.rest, "/v2/health/live", "").await.0, 200);
    assert_eq!(get(srv.rest, "/v2/models/dbl", "").await.0, 401);
    assert_eq!(
        get(
            srv.rest,
            "/v2/models/dbl",
            "Authorization: Bearer wrong\r\n"
        )
        .await
        .0,
        401
    );
    assert_eq!(
        get(
            srv.rest,
            "/v2/models/dbl",
            "Authorization: Bearer s3cret\r\n"
        )
        .await
        .0,
        200
    );
    let anon = Client::new(
        &srv.grpc_url(),
        ClientConfig {
            protocol: Protocol::Grpc,
            retries: 0,
            ..Default::default()
        },
    )
    .unwrap();
    let e = anon.infer("dbl", &[x(1)]).await.unwrap_err();
    assert!(e.to_string().contains("Unauthenticated"), "{e}");
    for protocol in [Protocol::Rest, Protocol::Grpc] {
        let url = if protocol == Protocol::Grpc {
            srv.grpc_url()
        } else {
            srv.rest_url()
        };
        let c = Client::new(
            &url,
            ClientConfig {
                protocol,
                token: Some("s3cret".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(c.infer("dbl", &[x(1)]).await.is_ok());
    }
    srv.stop().await;
}

#[tokio::test]
async fn public_bind_without_tls_and_token_is_refused() {
    let cfg = ServeConfig {
        rest_bind: Some("0.0.0.0:0".parse().unwrap()),
        ..test_config()
    };
    let e = sieve_serve::Server::bind_backends(cfg, vec![("dbl".into(), Doubler::new(0))])
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("non-loopback"), "{e}");
}

#[tokio::test]
async fn concurrent_requests_are_batched_and_metrics_report_it() {
    let mut cfg = test_config();
    cfg.batch.max_delay = Duration::from_millis(100);
    let d = Doubler::new(20);
    let srv = start_with(cfg, d.clone()).await;
    let c = std::sync::Arc::new(Client::new(&srv.rest_url(), ClientConfig::default()).unwrap());
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move { c.infer("dbl", &[x(1 + i % 2)]).await })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        let r = t.await.unwrap().unwrap();
        assert_eq!(r.outputs[0].to_f32().unwrap(), expected_y(1 + i % 2));
    }
    assert!(
        d.calls() < 8,
        "8 concurrent requests ran as {} executions",
        d.calls()
    );
    let (st, text) = get(srv.rest, "/metrics", "").await;
    assert_eq!(st, 200);
    assert!(
        text.contains("sieve_requests_total{model=\"dbl\"} 8"),
        "{text}"
    );
    assert!(
        text.contains("sieve_request_failures_total{model=\"dbl\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("sieve_batch_size_count{model=\"dbl\"}"),
        "{text}"
    );
    assert!(
        text.contains("sieve_request_duration_seconds_bucket{model=\"dbl\",le=\"+Inf\"} 8"),
        "{text}"
    );
    assert!(
        text.contains("sieve_queue_depth{model=\"dbl\"} 0"),
        "{text}"
    );
    srv.stop().await;
}

#[test]
fn blocking_client_works_from_sync_code() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let srv = rt.block_on(start(Doubler::new(0)));
    let c =
        sieve_serve::client::BlockingClient::new(&srv.rest_url(), ClientConfig::default()).unwrap();
    assert!(c.live().unwrap());
    let r = c.infer("dbl", &[x(2)]).unwrap();
    assert_eq!(r.outputs[0].to_f32().unwrap(), expected_y(2));
    rt.block_on(srv.stop());
}

#[tokio::test]
async fn tls_serves_rest_to_a_verifying_client() {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls;
    let data = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data"));
    let cfg = ServeConfig {
        tls: Some(sieve_serve::TlsPaths {
            cert: data.join("server.pem"),
            key: data.join("server.key"),
        }),
        ..test_config()
    };
    let srv = start_with(cfg, Doubler::new(0)).await;
    let mut roots = rustls::RootCertStore::empty();
    use rustls_pki_types::pem::PemObject;
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_file(data.join("ca.pem")).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client_cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_cfg));
    let tcp = tokio::net::TcpStream::connect(srv.rest).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(b"GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tls.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    // Plain HTTP to the TLS port gets no answer, and the server stays up.
    let (st, _) = raw_http(srv.rest, b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(st, 0);
    srv.stop().await;
}
