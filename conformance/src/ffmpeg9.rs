//! A recent ffmpeg for what Debian's ffmpeg 5.1 cannot do: read H.265 over RTMP and FLV
//! (enhanced RTMP). It comes from the PyPI package `imageio-ffmpeg`, which ships a static
//! ffmpeg 9 build (no ffprobe: packet lists come from `-c copy -f framecrc`, see
//! [`crate::probe::copy_args`]).
//!
//! The package is installed on first use into a virtualenv in the conformance cache directory
//! (next to the cached clips), so `cargo test` provisions it by itself on a fresh machine. The
//! virtualenv is built under a unique name and renamed into place, so concurrent test
//! processes never use a half-installed one.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The imageio-ffmpeg release whose binary the tests were written against (ffmpeg 9.0.2).
const PACKAGE: &str = "imageio-ffmpeg==0.8.1";

/// The ffmpeg 9 binary, installed first if needed. Panics with the reason if it cannot be
/// (no python3, no network to PyPI): the tests that need it cannot run without it.
pub fn ffmpeg9() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(path) = std::env::var_os("MEDIAKIT_FFMPEG9") {
            return PathBuf::from(path);
        }
        let dir = crate::media::cache_dir();
        let venv = dir.join("ffmpeg9-venv");
        if !venv.join("installed").exists() {
            install(&venv);
        }
        let python = venv.join("bin").join("python");
        let output = Command::new(&python)
            .args([
                "-c",
                "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())",
            ])
            .output()
            .unwrap_or_else(|error| panic!("run {}: {error}", python.display()));
        assert!(
            output.status.success(),
            "imageio_ffmpeg.get_ffmpeg_exe(): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
    })
}

fn install(venv: &Path) {
    // Creating the directory is the lock: one process installs, the others wait for its
    // marker. (A virtualenv records its own path, so it cannot be built elsewhere and renamed.)
    if std::fs::create_dir(venv).is_err() {
        return wait_for_marker(venv);
    }
    let run = |program: &Path, args: &[&str]| {
        let output = Command::new(program)
            .args(args)
            .output()
            .unwrap_or_else(|error| panic!("run {}: {error}", program.display()));
        assert!(
            output.status.success(),
            "{} {}: {}",
            program.display(),
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let venv_str = venv.to_string_lossy().into_owned();
    run(Path::new("python3"), &["-m", "venv", &venv_str]);
    let pip = venv.join("bin").join("pip");
    run(
        &pip,
        &["install", "--quiet", "--disable-pip-version-check", PACKAGE],
    );
    std::fs::write(venv.join("installed"), PACKAGE)
        .unwrap_or_else(|error| panic!("mark {}: {error}", venv.display()));
}

fn wait_for_marker(venv: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while !venv.join("installed").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} was not finished by another test process within 5 minutes (remove it if an \
             install was interrupted)",
            venv.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
