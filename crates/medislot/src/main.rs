//! The medislot binary: `serve`, `migrate`, `admin create`.

/// mimalloc instead of glibc's allocator: a node's many threads (the runtime's
/// and one per SQLite connection) each grew their own glibc arena, and freed
/// memory stayed mapped; mimalloc hands it back (see README, Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    medislot::cli::main()
}
