//! The medislot binary: `serve`, `migrate`, `admin create`.

fn main() -> std::process::ExitCode {
    medislot::cli::main()
}
