//! `sieve`: the command-line front end. One subcommand per file; each file is thin
//! and calls into the library crates.

mod accuracy;
mod bench;
mod calibrate;
#[path = "../../sieve-serve/cli/client_cmd.rs"]
mod client_cmd;
mod common;
#[path = "../../sieve-design/cli/design_cmd.rs"]
mod design_cmd;
mod infer;
#[path = "../../sieve-design/cli/inspect_cmd.rs"]
mod inspect_cmd;
#[path = "../../sieve-design/cli/plain_progress.rs"]
mod plain_progress;
#[path = "../../sieve-serve/cli/serve_cmd.rs"]
mod serve_cmd;
mod speculate;

use clap::{Parser, Subcommand};

/// SIEVE: speculative CNN inference on the edge with cloud replay.
#[derive(Parser)]
#[command(name = "sieve", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a model on an input batch (.npy, uint8 or float32 NCHW) and write the raw outputs.
    Infer(infer::Args),
    /// Top-1/top-5 accuracy of a model on a dataset split.
    Accuracy(accuracy::Args),
    /// Latency (median, p90) and throughput of a model at a given batch size.
    Bench(bench::Args),
    /// Design the speculative CNNs (exact / accurate / approximate) of a model: the paper's search.
    Design(design_cmd::Args),
    /// Show what a speculative model package (.sieve) holds.
    Inspect(inspect_cmd::Args),
    /// Calibrate the misspeculation detector of a package: confidence thresholds per variant and target.
    Calibrate(calibrate::Args),
    /// Offline speculation + detector + original replay on a split, per variant and mode.
    Speculate(speculate::Args),
    /// Serve models over the Open Inference Protocol (KServe v2): REST + gRPC.
    Serve(serve_cmd::Args),
    /// Talk to an Open Inference Protocol server (ours, Triton, KServe, ...).
    Client {
        #[command(subcommand)]
        command: ClientCommand,
    },
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Send an input batch (.npy) for inference and write the outputs.
    Infer(client_cmd::Args),
    /// Liveness, readiness and (with --model) a model's metadata.
    Status(client_cmd::StatusArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Infer(a) => infer::run(a),
        Command::Accuracy(a) => accuracy::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Design(a) => design_cmd::run(a),
        Command::Inspect(a) => inspect_cmd::run(a),
        Command::Calibrate(a) => calibrate::run(a),
        Command::Speculate(a) => speculate::run(a),
        Command::Serve(a) => serve_cmd::run(a),
        Command::Client {
            command: ClientCommand::Infer(a),
        } => client_cmd::run(a),
        Command::Client {
            command: ClientCommand::Status(a),
        } => client_cmd::run_status(a),
    };
    if let Err(e) = result {
        eprintln!("error: {}", error_message(&e));
        std::process::exit(1);
    }
}

/// The error and its causes joined by ": ", like anyhow's `{:#}`, but without a cause
/// whose text the message already ends with (error types that print their source
/// inside their own message, e.g. `cannot read 'x': No such file or directory`, would
/// otherwise show it twice), and without a cause's leading `PATH: ` when the message so
/// far ends with that path (`loading package m.sieve: m.sieve: checksum mismatch`).
fn error_message(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if msg.is_empty() {
            msg = text;
            continue;
        }
        if msg.ends_with(&text) {
            continue;
        }
        let last_word = msg.rsplit(' ').next().unwrap_or_default();
        let text = text
            .strip_prefix(last_word)
            .and_then(|rest| rest.strip_prefix(": "))
            .unwrap_or(&text);
        msg.push_str(": ");
        msg.push_str(text);
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::error_message;
    use anyhow::Context;

    #[test]
    fn a_cause_the_message_already_shows_is_not_repeated() {
        // sieve-onnx's I/O error prints its source inside its own message.
        let e = sieve_onnx::load_file("/nonexistent/m.onnx")
            .context("loading model /nonexistent/m.onnx")
            .err()
            .map(|e| error_message(&e))
            .unwrap_or_default();
        assert!(
            e.starts_with("loading model /nonexistent/m.onnx: cannot read '/nonexistent/m.onnx': "),
            "{e}"
        );
        assert_eq!(e.matches("No such file").count(), 1, "{e}");
    }

    #[test]
    fn a_cause_starting_with_the_path_just_named_drops_it() {
        let e = anyhow::anyhow!("m.sieve: checksum mismatch").context("loading package m.sieve");
        assert_eq!(
            error_message(&e),
            "loading package m.sieve: checksum mismatch"
        );
        // Only a whole leading path is dropped.
        let e = anyhow::anyhow!("m.sieve.bak: gone").context("loading package m.sieve");
        assert_eq!(
            error_message(&e),
            "loading package m.sieve: m.sieve.bak: gone"
        );
    }

    #[test]
    fn distinct_causes_are_all_kept() {
        let e = anyhow::anyhow!("truncated header").context("reading input x.npy");
        assert_eq!(error_message(&e), "reading input x.npy: truncated header");
    }
}
