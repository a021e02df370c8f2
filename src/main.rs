//! The `blobmount` binary: parses flags and runs one command.

use blobmount::cli::{Cli, Command};
use clap::Parser;

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Mount(args) => blobmount::mount::run(*args),
        Command::Check(args) => blobmount::check::run(args),
        Command::Unmount(args) => match blobmount::mountpoint::unmount(&args.mountpoint) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("blobmount: {e}");
                1
            }
        },
    };
    std::process::exit(code);
}
