//! Stand-alone `serve` / `client` front end built from the same subcommand files that
//! `sieve-cli` uses (`cli/serve_cmd.rs`, `cli/client_cmd.rs`), so the interop and load
//! scripts can run without the full `sieve` binary.
//!
//! `cargo run -p sieve-serve --example sieve_serve_cli -- serve --model lenet5=fixtures/lenet5/model.onnx`

#[path = "../cli/client_cmd.rs"]
mod client_cmd;
#[path = "../cli/serve_cmd.rs"]
mod serve_cmd;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "sieve", about = "sieve-serve front end")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve models over the Open Inference Protocol.
    Serve(serve_cmd::Args),
    /// Talk to an Open Inference Protocol server.
    Client {
        #[command(subcommand)]
        command: ClientCommand,
    },
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Send an input batch (.npy) for inference and write the outputs.
    Infer(client_cmd::Args),
    /// Print liveness, readiness and a model's metadata.
    Status(client_cmd::StatusArgs),
}

fn main() {
    let result = match Cli::parse().command {
        Command::Serve(a) => serve_cmd::run(a),
        Command::Client {
            command: ClientCommand::Infer(a),
        } => client_cmd::run(a),
        Command::Client {
            command: ClientCommand::Status(a),
        } => client_cmd::run_status(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
