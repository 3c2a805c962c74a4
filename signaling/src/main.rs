//! The `chorus` binary: `chorus` (or `chorus serve`) runs the server, `chorus token` prints an access token.
//! See `cli.rs`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
