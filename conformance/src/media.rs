//! Source clips for the live tests, generated once with ffmpeg from lavfi and cached on disk.
//!
//! The clips are H.264 (libx264, 320x240, 25 fps, a keyframe every 25 frames i.e. every second,
//! two B-frames so that pts differs from dts) and AAC-LC (44.1 kHz stereo), 6 seconds, in FLV,
//! the container an RTMP publish carries anyway: `ffmpeg -c copy` from FLV to RTMP keeps every
//! packet and every timestamp (checked by remuxing the clip twice and comparing ffprobe's packet
//! lists), so the clip's own packet list is the reference a player must see.
//!
//! Each clip is encoded once per cache directory: written under a unique temporary name and
//! renamed into place, so concurrent test processes never see a half-written file (at worst two
//! of them encode the same clip, and the rename keeps one). Within a process a `OnceLock` per
//! clip makes parallel tests wait for the first encode.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use crate::probe::{self, ProbeReport, Proc};

/// Which source clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clip {
    /// H.264 + AAC.
    AudioVideo,
    /// H.264 only.
    VideoOnly,
    /// AAC only.
    AudioOnly,
    /// H.264 without B-frames + AAC, as IP cameras send it: RTP carries presentation time
    /// only, so over RTSP pts is the only timestamp and this clip has dts == pts.
    Camera,
    /// H.265 (libx265, two B-frames) + AAC, in MP4: Debian's ffmpeg 5.1 cannot write H.265
    /// into FLV, and MP4 keeps both timestamps and the AAC configuration RTSP needs.
    Hevc,
}

/// Clip length in seconds.
pub const CLIP_SECONDS: u32 = 6;
/// Video frame rate.
pub const FPS: u32 = 25;
/// Video width.
pub const WIDTH: u64 = 320;
/// Video height.
pub const HEIGHT: u64 = 240;

// Bump when the encode settings change, so stale cached clips are not reused.
const VERSION: &str = "v1";

impl Clip {
    fn name(self) -> &'static str {
        match self {
            Clip::AudioVideo => "h264_aac",
            Clip::VideoOnly => "video_only",
            Clip::AudioOnly => "audio_only",
            Clip::Camera => "camera_h264_aac",
            Clip::Hevc => "h265_aac",
        }
    }

    /// The video codec as ffmpeg names it, if the clip has video.
    pub fn video_codec(self) -> Option<&'static str> {
        match self {
            Clip::AudioOnly => None,
            Clip::Hevc => Some("hevc"),
            _ => Some("h264"),
        }
    }

    /// The container of the cached clip (also its file extension).
    fn container(self) -> &'static str {
        match self {
            Clip::Hevc => "mp4",
            _ => "flv",
        }
    }

    fn cell(self) -> &'static OnceLock<(PathBuf, ProbeReport)> {
        static AV: OnceLock<(PathBuf, ProbeReport)> = OnceLock::new();
        static V: OnceLock<(PathBuf, ProbeReport)> = OnceLock::new();
        static A: OnceLock<(PathBuf, ProbeReport)> = OnceLock::new();
        static CAMERA: OnceLock<(PathBuf, ProbeReport)> = OnceLock::new();
        static HEVC: OnceLock<(PathBuf, ProbeReport)> = OnceLock::new();
        match self {
            Clip::AudioVideo => &AV,
            Clip::VideoOnly => &V,
            Clip::AudioOnly => &A,
            Clip::Camera => &CAMERA,
            Clip::Hevc => &HEVC,
        }
    }

    /// The path of the cached clip, encoding it first if needed.
    pub fn path(self) -> &'static Path {
        &self.cached().0
    }

    /// What ffprobe reports about the clip file: the reference for every player.
    pub fn source(self) -> &'static ProbeReport {
        &self.cached().1
    }

    fn cached(self) -> &'static (PathBuf, ProbeReport) {
        self.cell().get_or_init(|| {
            let path = ensure_clip(self);
            let run = probe::probe(&path.to_string_lossy(), &[], Duration::from_secs(30));
            let report = run
                .expect_ok(&format!("probe source clip {}", path.display()))
                .clone();
            (path, report)
        })
    }
}

/// The ffmpeg arguments that encode `clip` (without the output path); shared with nothing
/// else on purpose: the capture script (`captures/record.sh`) has its own, smaller settings.
pub fn encode_args(clip: Clip, seconds: u32) -> Vec<String> {
    let video_in = format!("testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}");
    let audio_in = "sine=frequency=440:sample_rate=44100".to_string();
    let mut args: Vec<String> = ["-nostdin", "-hide_banner", "-v", "error", "-y"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let video = clip != Clip::AudioOnly;
    let audio = clip != Clip::VideoOnly;
    if video {
        args.extend(["-f".into(), "lavfi".into(), "-i".into(), video_in]);
    }
    if audio {
        args.extend(["-f".into(), "lavfi".into(), "-i".into(), audio_in]);
    }
    args.extend(["-t".into(), seconds.to_string()]);
    if clip == Clip::Hevc {
        // The same GOP as the H.264 clips: two B-frames, one keyframe per second.
        let x265 = format!("bframes=2:keyint={FPS}:min-keyint={FPS}:scenecut=0:log-level=error");
        args.extend(
            [
                "-c:v",
                "libx265",
                "-preset",
                "ultrafast",
                "-x265-params",
                &x265,
                "-pix_fmt",
                "yuv420p",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
    } else if video {
        // ultrafast turns B-frames off; bframes=2 turns them back on (checked: pts != dts).
        // keyint = min-keyint = 25 and no scenecut: exactly one keyframe per second.
        let bframes = if clip == Clip::Camera { 0 } else { 2 };
        let x264 = format!("bframes={bframes}:keyint={FPS}:min-keyint={FPS}:scenecut=0");
        args.extend(
            [
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-x264-params",
                &x264,
                "-pix_fmt",
                "yuv420p",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
    }
    if audio {
        args.extend(
            ["-c:a", "aac", "-ar", "44100", "-ac", "2", "-b:a", "64k"]
                .iter()
                .map(|s| s.to_string()),
        );
    }
    args.extend(["-f".into(), clip.container().into()]);
    args
}

/// Where cached clips live: `$CARGO_TARGET_DIR/conformance-media`, else the workspace's
/// `target/conformance-media`, else the system temp dir.
pub fn cache_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target"));
    let dir = target.join("conformance-media");
    if std::fs::create_dir_all(&dir).is_ok() {
        return dir;
    }
    let dir = std::env::temp_dir().join("mediakit-conformance-media");
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|error| panic!("create {}: {error}", dir.display()));
    dir
}

fn ensure_clip(clip: Clip) -> PathBuf {
    let dir = cache_dir();
    let path = dir.join(format!(
        "{}-{CLIP_SECONDS}s-{VERSION}.{}",
        clip.name(),
        clip.container()
    ));
    if path.exists() {
        return path;
    }
    let partial = dir.join(format!(
        "{}.{}.partial.{}",
        clip.name(),
        std::process::id(),
        clip.container()
    ));
    let mut args = encode_args(clip, CLIP_SECONDS);
    args.push(partial.to_string_lossy().into_owned());
    let finished = probe::run("ffmpeg", &args, Duration::from_secs(60));
    assert!(
        finished.success() && partial.exists(),
        "encode source clip: {}",
        finished.describe()
    );
    std::fs::rename(&partial, &path).unwrap_or_else(|error| {
        panic!(
            "rename {} to {}: {error}",
            partial.display(),
            path.display()
        )
    });
    path
}

/// Starts ffmpeg publishing `clip` in real time (`-re`, `-c copy`) over RTSP with the lower
/// transport given: `"tcp"` (interleaved) or `"udp"` (`ffmpeg -f rtsp -rtsp_transport ...`).
pub fn publish_rtsp(clip: Clip, url: &str, transport: &str) -> Proc {
    publish_as(
        clip,
        url,
        &[],
        &["-f", "rtsp", "-rtsp_transport", transport],
    )
}

/// Starts ffmpeg publishing `clip` in real time (`-re`, `-c copy`) to `url` (RTMP).
///
/// `input_options` go before `-i` (e.g. `["-t", "2"]` to publish only the first two seconds).
pub fn publish(clip: Clip, url: &str, input_options: &[&str]) -> Proc {
    publish_as(clip, url, input_options, &["-f", "flv"])
}

/// Starts ffmpeg publishing `clip` in real time (`-re`, `-c copy`) to `url`, with the output
/// format options given (e.g. `["-f", "rtsp", "-rtsp_transport", "tcp"]`).
pub fn publish_as(clip: Clip, url: &str, input_options: &[&str], output_format: &[&str]) -> Proc {
    let path = clip.path();
    let mut args: Vec<String> = ["-nostdin", "-hide_banner", "-v", "error", "-re"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(input_options.iter().map(|s| s.to_string()));
    args.extend([
        "-i".into(),
        path.to_string_lossy().into_owned(),
        "-c".into(),
        "copy".into(),
    ]);
    args.extend(output_format.iter().map(|s| s.to_string()));
    args.push(url.to_string());
    Proc::spawn("ffmpeg", &args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::StreamKind;

    #[test]
    fn audio_video_clip_has_b_frames_one_second_gops_and_both_codecs() {
        let source = Clip::AudioVideo.source();
        let video = source.of(StreamKind::Video);
        let audio = source.of(StreamKind::Audio);
        assert_eq!(video.len(), (CLIP_SECONDS * FPS) as usize);
        // 1024 samples per AAC frame at 44.1 kHz over 6 s: 258.4, plus the encoder's priming.
        assert!(
            (255..=265).contains(&audio.len()),
            "{} audio packets",
            audio.len()
        );
        assert!(
            video.iter().any(|p| p.pts_ms != p.dts_ms),
            "no B-frames: pts == dts everywhere"
        );
        let keyframes: Vec<usize> = video
            .iter()
            .enumerate()
            .filter(|(_, p)| p.keyframe)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(
            keyframes,
            (0..CLIP_SECONDS as usize)
                .map(|s| s * FPS as usize)
                .collect::<Vec<_>>()
        );
        let stream = source.stream(StreamKind::Video).expect("video stream");
        assert_eq!(
            (stream.codec_name.as_str(), stream.width, stream.height),
            ("h264", Some(WIDTH), Some(HEIGHT))
        );
        let stream = source.stream(StreamKind::Audio).expect("audio stream");
        assert_eq!(
            (
                stream.codec_name.as_str(),
                stream.sample_rate,
                stream.channels
            ),
            ("aac", Some(44100), Some(2))
        );
    }

    #[test]
    fn single_track_clips_have_one_stream() {
        let video = Clip::VideoOnly.source();
        assert_eq!(video.streams.len(), 1);
        assert_eq!(
            video.of(StreamKind::Video).len(),
            (CLIP_SECONDS * FPS) as usize
        );
        let audio = Clip::AudioOnly.source();
        assert_eq!(audio.streams.len(), 1);
        assert!(audio.of(StreamKind::Audio).len() > 250);
    }

    #[test]
    fn decode_check_counts_every_frame_of_the_clip() {
        let clip = Clip::AudioVideo;
        let decode = crate::probe::decode_check(
            &clip.path().to_string_lossy(),
            &[],
            Duration::from_secs(30),
        );
        assert!(decode.finished.success(), "{}", decode.finished.describe());
        assert!(decode.error_lines.is_empty(), "{:?}", decode.error_lines);
        assert_eq!(
            decode.video_frames,
            clip.source().of(StreamKind::Video).len() as u64
        );
        assert_eq!(
            decode.audio_frames,
            clip.source().of(StreamKind::Audio).len() as u64
        );
    }

    #[test]
    fn camera_clip_has_no_b_frames() {
        let source = Clip::Camera.source();
        let video = source.of(StreamKind::Video);
        assert_eq!(video.len(), (FPS * CLIP_SECONDS) as usize);
        assert!(
            video.iter().all(|p| p.dts_ms == p.pts_ms),
            "dts == pts on every frame"
        );
        assert!(!source.of(StreamKind::Audio).is_empty());
    }
}
