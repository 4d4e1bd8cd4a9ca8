//! `mediakit-async-std`: the live streaming server on async-std.

fn main() -> std::process::ExitCode {
    mediakit_server::engine::run_main::<mediakit_async_std::AsyncStd>("mediakit-async-std")
}
