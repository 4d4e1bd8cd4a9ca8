//! `mediakit`: the live streaming server on tokio.

fn main() -> std::process::ExitCode {
    mediakit_server::engine::run_main::<mediakit_tokio::Tokio>("mediakit")
}
