//! `webcall-bench`: load generator (subcommands arrive with the issues that need them).

fn main() {
    eprintln!("webcall-bench: no subcommand yet");
}
