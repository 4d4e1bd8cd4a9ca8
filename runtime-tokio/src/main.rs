//! `mediakit`: the live streaming server on tokio.

fn main() -> std::process::ExitCode {
    mediakit_support::engine::run_main::<mediakit_tokio::Tokio>("mediakit")
}
