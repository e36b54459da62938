//! `xiansuo`: the commands (`serve`, `migrate`, `user`, `copy`, `send`, `version`).

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xiansuo: {e}");
            ExitCode::from(2)
        }
    }
}
