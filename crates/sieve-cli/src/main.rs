//! `sieve`: the command-line front end. One subcommand per file; each file is thin
//! and calls into the library crates.

mod accuracy;
mod bench;
mod common;
mod infer;

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
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Infer(a) => infer::run(a),
        Command::Accuracy(a) => accuracy::run(a),
        Command::Bench(a) => bench::run(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
