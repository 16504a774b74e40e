//! Stand-alone driver for the `design` and `inspect` subcommands (the `sieve`
//! binary wires the same files).
#![allow(missing_docs)]

mod design_cmd;
mod eval_cmd;
mod inspect_cmd;
mod plain_progress;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "sieve-design", version, about = "SIEVE speculative CNN design")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Search formats and write a .sieve package.
    Design(design_cmd::Args),
    /// Print what a .sieve package holds.
    Inspect(inspect_cmd::Args),
    /// Top-1 of every variant (and the source model) on a split.
    Eval(eval_cmd::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Design(a) => design_cmd::run(a),
        Cmd::Inspect(a) => inspect_cmd::run(a),
        Cmd::Eval(a) => eval_cmd::run(a),
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
