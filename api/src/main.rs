//! The `webcall` binary: a thin shim over [`api::cli::main`].

#[tokio::main]
async fn main() -> std::process::ExitCode {
    api::cli::main().await
}
