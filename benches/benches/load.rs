//! Load benchmark: the same live workload against each server binary, side by side.
//!
//! `cargo bench -p mediakit-benches --bench load` after
//! `cargo build --release -p mediakit-tokio -p mediakit-async-std`. `LOAD_PLAYERS` (default 200)
//! and `LOAD_SECONDS` (default 10) size the run; `MEDIAKIT_SERVER_BINS` (paths separated by `:`)
//! picks other binaries.

use std::process::ExitCode;

use mediakit_benches::load::{self, LoadConfig};

fn main() -> ExitCode {
    // `cargo test --benches` runs bench targets without `--bench`: a minute-long load run has no
    // place in a test pass.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("load: skipped (run it with `cargo bench -p mediakit-benches --bench load`)");
        return ExitCode::SUCCESS;
    }
    let config = match LoadConfig::from_env() {
        Ok(config) => config,
        Err(why) => {
            eprintln!("load: {why}");
            return ExitCode::FAILURE;
        }
    };
    let binaries = match load::server_binaries() {
        Ok(binaries) => binaries,
        Err(why) => {
            eprintln!("load: {why}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "load: {} players (half HTTP-FLV, half RTMP), {} s window, one publisher at ~4 Mbit/s, \
         server with --workers 2, {} clock ticks/s",
        config.players,
        config.window.as_secs(),
        load::clock_ticks_per_second()
    );
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for binary in &binaries {
        println!("load: running {}", binary.display());
        match load::run(binary, &config) {
            Ok(report) => {
                failures.extend(
                    report
                        .problems
                        .iter()
                        .map(|problem| format!("{}: {problem}", report.binary)),
                );
                reports.push(report);
            }
            Err(why) => failures.push(format!("{}: {why}", binary.display())),
        }
    }
    println!();
    print!("{}", load::table(&reports));
    for report in &reports {
        let (least, most) = report.player_bytes_range;
        println!(
            "{}: published {} bytes in the window; per player {least}..{most} bytes; \
             {} stalled (nothing during the window), {} late (no first bytes before it)",
            report.binary, report.published_bytes, report.stalled, report.late
        );
    }
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        for failure in &failures {
            eprintln!("load: FAILED {failure}");
        }
        ExitCode::FAILURE
    }
}
