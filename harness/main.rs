//! The `harness` command: parses arguments, runs the library, maps the outcome to an exit code.

fn main() -> std::process::ExitCode {
    harness::cli::main()
}
