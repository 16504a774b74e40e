//! Black-box tests of `sieve client` against a real `sieve serve` over loopback sockets,
//! a dead address, and a web server that does not speak the protocol.

#![allow(clippy::unwrap_used)]

mod common;

use common::{error_line, root, sieve};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

/// A server process, killed when dropped (also when a test fails).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `sieve serve` of the fixture LeNet-5 on a free REST port (no gRPC); its URL.
fn serve() -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sieve"))
        .args([
            "serve",
            "--model",
            "lenet5=fixtures/lenet5/model.onnx",
            "--bind",
            "127.0.0.1:0",
            "--no-grpc",
        ])
        .current_dir(root())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // The server announces its addresses on stdout.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("server exited").unwrap();
        if let Some(u) = line.strip_prefix("sieve-serve: REST on ") {
            break u.trim().to_string();
        }
    };
    // Keep draining the server's stdout so that it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (Server(child), url)
}

#[test]
fn status_exit_code_follows_the_server() {
    let (server, url) = serve();
    let out = sieve(&["client", "status", "--url", &url, "--model", "lenet5"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains("live: true") && text.contains("ready: true"),
        "{text}"
    );
    assert!(text.contains("model lenet5"), "{text}");
    drop(server);
    // The server is gone: a connection error, exit code 1.
    let out = sieve(&[
        "client",
        "status",
        "--url",
        &url,
        "--retries",
        "0",
        "--timeout-ms",
        "2000",
    ]);
    let e = error_line(&out);
    assert!(e.contains(&url), "{e}");
}

/// A web server answering every request with an HTML 404 page.
fn foreign_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut buf = [0u8; 65536];
            let _ = c.read(&mut buf);
            let body = format!(
                "<!DOCTYPE HTML>\n<html>\n<head><title>Error response</title></head>\n<body>\n{}</body></html>\n",
                "<p>Nothing matches the given URI.</p>\n".repeat(20)
            );
            let _ = write!(
                c,
                "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}")
}

#[test]
fn a_server_that_does_not_speak_the_protocol_gets_one_clear_line() {
    let url = foreign_server();
    // Not live: printed, and exit code 1.
    let out = sieve(&["client", "status", "--url", &url]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("live: false"));
    let e = error_line(&out);
    assert!(e.contains("is not live"), "{e}");
    // Its HTML error page: one short line saying what it is.
    let out = sieve(&[
        "client",
        "infer",
        "--url",
        &url,
        "--model",
        "lenet5",
        "--input",
        "fixtures/lenet5/reference/input_uint8.npy",
    ]);
    let e = error_line(&out);
    assert!(
        e.contains("server answered 404: not an Open Inference Protocol error"),
        "{e}"
    );
    assert!(e.len() < 400, "{e}");
}
