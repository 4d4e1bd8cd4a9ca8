//! Bounded child processes (ffmpeg, ffprobe) and what ffprobe and ffmpeg report about a stream.
//!
//! Every child started here has a deadline: [`Proc::wait_timeout`] kills it by its PID
//! (`Child::kill`) when it overruns, and dropping a [`Proc`] kills it too, so a hung player or
//! a server that never answers cannot hang the suite.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Panics with an actionable message unless `tool -version` runs; checked once per tool.
///
/// The live suite must fail loudly (never skip) on a machine without ffmpeg.
pub fn require_tool(tool: &'static str) {
    static FFMPEG: OnceLock<Result<(), String>> = OnceLock::new();
    static FFPROBE: OnceLock<Result<(), String>> = OnceLock::new();
    let cell = match tool {
        "ffprobe" => &FFPROBE,
        _ => &FFMPEG,
    };
    let checked = cell.get_or_init(|| {
        match Command::new(tool)
            .arg("-version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => Err(format!("`{tool} -version` exited with {status}")),
            Err(error) => Err(format!("cannot run `{tool}`: {error}")),
        }
    });
    if let Err(error) = checked {
        panic!("{error}: the conformance tests need ffmpeg and ffprobe on PATH (Debian: `apt-get install ffmpeg`)");
    }
}

/// A running child process with its output captured; killed by PID when dropped.
pub struct Proc {
    name: String,
    child: Option<Child>,
    started: Instant,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

impl std::fmt::Debug for Proc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proc")
            .field("name", &self.name)
            .field("pid", &self.pid())
            .finish()
    }
}

/// How a child process ended.
#[derive(Debug)]
pub struct Finished {
    /// A short description of the command, for assertion messages.
    pub name: String,
    /// The exit status; `None` if it overran its deadline and was killed.
    pub status: Option<ExitStatus>,
    /// Everything it wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr.
    pub stderr: String,
    /// From spawn to exit (or to the kill).
    pub elapsed: Duration,
}

impl Finished {
    /// True if it exited by itself with status 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|status| status.success())
    }

    /// True if it overran its deadline and was killed.
    pub fn timed_out(&self) -> bool {
        self.status.is_none()
    }

    /// A one-paragraph summary for assertion messages.
    pub fn describe(&self) -> String {
        let status = match self.status {
            Some(status) => status.to_string(),
            None => "killed after overrunning its deadline".into(),
        };
        format!(
            "`{}`: {status} after {:?}; stderr:\n{}",
            self.name,
            self.elapsed,
            self.stderr.trim_end()
        )
    }
}

fn drain(mut stream: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buffer = Vec::new();
        let _ = stream.read_to_end(&mut buffer);
        buffer
    })
}

impl Proc {
    /// Starts `program` with `args`, stdin closed, stdout and stderr captured.
    pub fn spawn(program: &'static str, args: &[String]) -> Proc {
        require_tool(program);
        Proc::spawn_path(Path::new(program), args)
    }

    /// Like [`Proc::spawn`], for a program given by path (such as the ffmpeg 9 binary).
    pub fn spawn_path(program: &Path, args: &[String]) -> Proc {
        let name = format!("{} {}", program.display(), args.join(" "));
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("start `{name}`: {error}"));
        let stdout = child.stdout.take().map(drain);
        let stderr = child.stderr.take().map(drain);
        Proc {
            name,
            child: Some(child),
            started: Instant::now(),
            stdout,
            stderr,
        }
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// True once the process has exited (without reaping its output).
    pub fn has_exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|child| !matches!(child.try_wait(), Ok(None)))
    }

    /// Time since it was started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Waits up to `timeout` for the process to exit by itself; kills it (by PID) if it does not.
    pub fn wait_timeout(mut self, timeout: Duration) -> Finished {
        let deadline = Instant::now() + timeout;
        let mut status = None;
        if let Some(child) = self.child.as_mut() {
            loop {
                match child.try_wait() {
                    Ok(Some(exit)) => {
                        status = Some(exit);
                        break;
                    }
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
        let elapsed = self.started.elapsed();
        self.child = None;
        let stdout = self
            .stdout
            .take()
            .and_then(|handle| handle.join().ok())
            .unwrap_or_default();
        let stderr = self
            .stderr
            .take()
            .and_then(|handle| handle.join().ok())
            .unwrap_or_default();
        Finished {
            name: self.name.clone(),
            status,
            stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            elapsed,
        }
    }

    /// Kills the process now (by PID) and collects what it wrote.
    pub fn kill(self) -> Finished {
        self.wait_timeout(Duration::ZERO)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `program` to completion, killed if it takes longer than `timeout`.
pub fn run(program: &'static str, args: &[String], timeout: Duration) -> Finished {
    Proc::spawn(program, args).wait_timeout(timeout)
}

/// Which kind of elementary stream a packet belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// Video.
    Video,
    /// Audio.
    Audio,
    /// Data, subtitles or anything else.
    Other,
}

/// One packet as ffprobe reports it, timestamps converted to milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// The kind of its stream.
    pub stream_kind: StreamKind,
    /// Its stream's codec (`h264`, `aac`, ...).
    pub codec_name: String,
    /// Decode timestamp, if ffprobe reports one.
    pub dts_ms: Option<i64>,
    /// Presentation timestamp, if ffprobe reports one.
    pub pts_ms: Option<i64>,
    /// Payload size in bytes.
    pub size: u64,
    /// ffprobe's `K` flag.
    pub keyframe: bool,
}

/// One stream as ffprobe reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// Stream index.
    pub index: u64,
    /// Its kind.
    pub kind: StreamKind,
    /// Codec name.
    pub codec_name: String,
    /// Video width.
    pub width: Option<u64>,
    /// Video height.
    pub height: Option<u64>,
    /// Audio sample rate.
    pub sample_rate: Option<u64>,
    /// Audio channels.
    pub channels: Option<u64>,
}

/// What ffprobe reported: its streams and every packet in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeReport {
    /// `-show_streams`.
    pub streams: Vec<StreamInfo>,
    /// `-show_packets`, in the order ffprobe read them.
    pub packets: Vec<Packet>,
}

impl ProbeReport {
    /// The packets of one kind, in order.
    pub fn of(&self, kind: StreamKind) -> Vec<&Packet> {
        self.packets
            .iter()
            .filter(|packet| packet.stream_kind == kind)
            .collect()
    }

    /// The dts of each packet of one kind, minus the first one's (packets without a dts are
    /// reported as `i64::MIN` so that they cannot match a real sequence).
    pub fn relative_dts(&self, kind: StreamKind) -> Vec<i64> {
        let dts: Vec<i64> = self
            .of(kind)
            .iter()
            .map(|packet| packet.dts_ms.unwrap_or(i64::MIN))
            .collect();
        let first = dts.first().copied().unwrap_or(0);
        dts.iter()
            .map(|&d| if d == i64::MIN { d } else { d - first })
            .collect()
    }

    /// The first stream of a kind.
    pub fn stream(&self, kind: StreamKind) -> Option<&StreamInfo> {
        self.streams.iter().find(|stream| stream.kind == kind)
    }
}

fn as_u64(value: &Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}

fn kind_of(value: &Value) -> StreamKind {
    match value.as_str() {
        Some("video") => StreamKind::Video,
        Some("audio") => StreamKind::Audio,
        _ => StreamKind::Other,
    }
}

/// Parses `ffprobe -show_packets -show_streams -of json` output.
pub fn parse_probe_json(json: &[u8]) -> Result<ProbeReport, String> {
    let root: Value =
        serde_json::from_slice(json).map_err(|error| format!("ffprobe JSON: {error}"))?;
    let mut report = ProbeReport::default();
    // (numerator, denominator) of each stream's time base, by index.
    let mut time_bases = std::collections::HashMap::new();
    for stream in root["streams"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let index = as_u64(&stream["index"]).ok_or("stream without index")?;
        let time_base = stream["time_base"]
            .as_str()
            .and_then(|tb| tb.split_once('/'))
            .and_then(|(n, d)| Some((n.parse::<i64>().ok()?, d.parse::<i64>().ok()?)));
        time_bases.insert(
            index,
            time_base.filter(|&(_, d)| d > 0).unwrap_or((1, 1000)),
        );
        report.streams.push(StreamInfo {
            index,
            kind: kind_of(&stream["codec_type"]),
            codec_name: stream["codec_name"].as_str().unwrap_or_default().to_owned(),
            width: as_u64(&stream["width"]),
            height: as_u64(&stream["height"]),
            sample_rate: as_u64(&stream["sample_rate"]),
            channels: as_u64(&stream["channels"]),
        });
    }
    for packet in root["packets"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let index = as_u64(&packet["stream_index"]).ok_or("packet without stream_index")?;
        let (num, den) = time_bases.get(&index).copied().unwrap_or((1, 1000));
        let to_ms = |value: &Value| value.as_i64().map(|ts| (ts * num * 1000).div_euclid(den));
        report.packets.push(Packet {
            stream_kind: kind_of(&packet["codec_type"]),
            codec_name: report
                .streams
                .iter()
                .find(|s| s.index == index)
                .map(|s| s.codec_name.clone())
                .unwrap_or_default(),
            dts_ms: to_ms(&packet["dts"]),
            pts_ms: to_ms(&packet["pts"]),
            size: as_u64(&packet["size"]).ok_or("packet without size")?,
            keyframe: packet["flags"]
                .as_str()
                .is_some_and(|flags| flags.contains('K')),
        });
    }
    Ok(report)
}

/// Parses `ffmpeg -c copy -f framecrc` output into the packets ffprobe would list: the header
/// names each stream's time base, media type and codec (`#tb 0: 1/1000`, `#media_type 0:
/// video`, `#codec_id 0: hevc`), then each packet is `index, dts, pts, duration, size, crc`
/// with `, F=0x..` when its flags are not exactly "keyframe".
pub fn parse_framecrc(output: &[u8]) -> Result<ProbeReport, String> {
    let mut report = ProbeReport::default();
    let mut time_bases = std::collections::HashMap::new();
    let text = String::from_utf8_lossy(output);
    let header = |line: &str, prefix: &str| -> Option<(u64, String)> {
        let (index, value) = line.strip_prefix(prefix)?.split_once(':')?;
        Some((index.trim().parse().ok()?, value.trim().to_owned()))
    };
    let stream = |report: &mut ProbeReport, index: u64| -> usize {
        if let Some(at) = report.streams.iter().position(|s| s.index == index) {
            return at;
        }
        report.streams.push(StreamInfo {
            index,
            kind: StreamKind::Other,
            codec_name: String::new(),
            width: None,
            height: None,
            sample_rate: None,
            channels: None,
        });
        report.streams.len() - 1
    };
    for line in text.lines() {
        if let Some((index, tb)) = header(line, "#tb ") {
            let (num, den) = tb.split_once('/').ok_or("bad #tb")?;
            let parse = |v: &str| v.trim().parse::<i64>().map_err(|e| e.to_string());
            time_bases.insert(index, (parse(num)?, parse(den)?));
        } else if let Some((index, kind)) = header(line, "#media_type ") {
            let at = stream(&mut report, index);
            report.streams[at].kind = kind_of(&Value::String(kind));
        } else if let Some((index, codec)) = header(line, "#codec_id ") {
            let at = stream(&mut report, index);
            report.streams[at].codec_name = codec;
        } else if let Some((index, size)) = header(line, "#dimensions ") {
            let at = stream(&mut report, index);
            let (w, h) = size.split_once('x').ok_or("bad #dimensions")?;
            report.streams[at].width = w.parse().ok();
            report.streams[at].height = h.parse().ok();
        } else if let Some((index, rate)) = header(line, "#sample_rate ") {
            let at = stream(&mut report, index);
            report.streams[at].sample_rate = rate.parse().ok();
        } else if let Some((index, layout)) = header(line, "#channel_layout_name ") {
            let at = stream(&mut report, index);
            report.streams[at].channels = match layout.as_str() {
                "mono" => Some(1),
                "stereo" => Some(2),
                _ => None,
            };
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let field = |i: usize| -> Result<i64, String> {
                fields
                    .get(i)
                    .ok_or_else(|| format!("short framecrc line {line:?}"))?
                    .parse::<i64>()
                    .map_err(|e| format!("{line:?}: {e}"))
            };
            let index = field(0)? as u64;
            let (num, den) = time_bases.get(&index).copied().unwrap_or((1, 1000));
            let to_ms = |ts: i64| (ts * num * 1000).div_euclid(den);
            let flags = fields
                .iter()
                .find_map(|f| f.strip_prefix("F=0x"))
                .map(|hex| i64::from_str_radix(hex, 16).map_err(|e| e.to_string()))
                .transpose()?
                .unwrap_or(1);
            let at = stream(&mut report, index);
            let info = &report.streams[at];
            report.packets.push(Packet {
                stream_kind: info.kind,
                codec_name: info.codec_name.clone(),
                dts_ms: Some(to_ms(field(1)?)),
                pts_ms: Some(to_ms(field(2)?)),
                size: field(4)? as u64,
                keyframe: flags & 1 == 1,
            });
        }
    }
    Ok(report)
}

/// ffmpeg arguments that read every stream of `input` and list its packets unchanged
/// (`-c copy -f framecrc`): ffprobe's packet list from an ffmpeg, for builds (the ffmpeg 9
/// binary) that come without ffprobe. `extra` goes before `-i`.
pub fn copy_args(input: &str, extra: &[&str]) -> Vec<String> {
    ffmpeg_args("error", extra, input, &["-c", "copy", "-f", "framecrc"])
}

/// `ffmpeg -nostdin -hide_banner -v LEVEL EXTRA... -i INPUT -map 0 OUTPUT... -`: every
/// stream of `input` to `output` on stdout; `extra` goes before `-i`.
fn ffmpeg_args(level: &str, extra: &[&str], input: &str, output: &[&str]) -> Vec<String> {
    ["-nostdin", "-hide_banner", "-v", level]
        .iter()
        .chain(extra)
        .chain(&["-i", input, "-map", "0"])
        .chain(output)
        .chain(&["-"])
        .map(|s| s.to_string())
        .collect()
}

/// The ffprobe arguments for `input`; `extra` goes before `-i` (input options such as
/// `-rw_timeout` or `-read_intervals`).
pub fn probe_args(input: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["-v", "error", "-hide_banner"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(
        ["-show_packets", "-show_streams", "-of", "json", "-i", input]
            .iter()
            .map(|s| s.to_string()),
    );
    args
}

/// Starts ffprobe on `input` in the background.
pub fn spawn_probe(input: &str, extra: &[&str]) -> Proc {
    Proc::spawn("ffprobe", &probe_args(input, extra))
}

/// A finished ffprobe run and its parsed report.
#[derive(Debug)]
pub struct ProbeRun {
    /// How ffprobe ended.
    pub finished: Finished,
    /// Its parsed output, or why it could not be parsed.
    pub report: Result<ProbeReport, String>,
}

impl ProbeRun {
    /// From a finished ffprobe process.
    pub fn from_finished(finished: Finished) -> ProbeRun {
        let report = parse_probe_json(&finished.stdout);
        ProbeRun { finished, report }
    }

    /// From a finished ffmpeg started with [`copy_args`].
    pub fn from_framecrc(finished: Finished) -> ProbeRun {
        let report = parse_framecrc(&finished.stdout);
        ProbeRun { finished, report }
    }

    /// The report of a run that must have exited cleanly with parseable output; panics with
    /// ffprobe's stderr otherwise.
    pub fn expect_ok(&self, what: &str) -> &ProbeReport {
        assert!(
            self.finished.success(),
            "{what}: ffprobe failed: {}",
            self.finished.describe()
        );
        match &self.report {
            Ok(report) => report,
            Err(error) => panic!("{what}: {error}; {}", self.finished.describe()),
        }
    }
}

/// Runs ffprobe on `input`, killed after `timeout`.
pub fn probe(input: &str, extra: &[&str], timeout: Duration) -> ProbeRun {
    ProbeRun::from_finished(spawn_probe(input, extra).wait_timeout(timeout))
}

/// What a full decode of a stream reported.
#[derive(Debug)]
pub struct DecodeReport {
    /// How ffmpeg ended.
    pub finished: Finished,
    /// Everything ffmpeg logged at level `error` or worse, one entry per line; empty for a
    /// clean decode.
    pub error_lines: Vec<String>,
    /// Decoded video frames.
    pub video_frames: u64,
    /// Decoded audio frames.
    pub audio_frames: u64,
}

/// The ffmpeg arguments that decode every stream of `input` and discard the result.
///
/// The output is `framecrc` rather than `null`: the decode is the same, and it prints one line
/// per decoded frame per stream, which gives exact per-stream frame counts (the null muxer's
/// progress report only counts video). Every stream is mapped so that a single stream being
/// dropped is visible. `extra` goes before `-i`.
pub fn decode_args(input: &str, extra: &[&str]) -> Vec<String> {
    ffmpeg_args("error", extra, input, &["-f", "framecrc"])
}

/// What ffmpeg's MPEG-TS demuxer says about a broken transport stream; the first only at
/// debug level, so [`spawn_ts_check`] reads at that level.
pub const TS_PROBLEMS: &[&str] = &[
    "Continuity check failed",
    "PES packet size mismatch",
    "Packet corrupt",
];

/// Starts an ffmpeg that demuxes every stream of `input` (`-c copy -f null`) logging at debug
/// level, for [`ts_problems`]. `extra` goes before `-i`.
pub fn spawn_ts_check(input: &str, extra: &[&str]) -> Proc {
    let args = ffmpeg_args("debug", extra, input, &["-c", "copy", "-f", "null"]);
    Proc::spawn("ffmpeg", &args)
}

/// The lines of a [`spawn_ts_check`] run that report a [`TS_PROBLEMS`] problem.
pub fn ts_problems(finished: &Finished) -> Vec<String> {
    finished
        .stderr
        .lines()
        .filter(|line| TS_PROBLEMS.iter().any(|problem| line.contains(problem)))
        .map(str::to_owned)
        .collect()
}

/// Starts a decoding ffmpeg on `input` in the background.
pub fn spawn_decode(input: &str, extra: &[&str]) -> Proc {
    Proc::spawn("ffmpeg", &decode_args(input, extra))
}

impl DecodeReport {
    /// From a finished decoding ffmpeg (started by [`spawn_decode`]): framecrc's header names
    /// each output stream's media type (`#media_type 0: video`), then one line per frame starts
    /// with the stream index.
    pub fn from_finished(finished: Finished) -> DecodeReport {
        let error_lines: Vec<String> = finished
            .stderr
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(str::to_owned)
            .collect();
        let mut kinds = std::collections::HashMap::new();
        let (mut video_frames, mut audio_frames) = (0, 0);
        for line in String::from_utf8_lossy(&finished.stdout).lines() {
            if let Some(rest) = line.strip_prefix("#media_type ") {
                if let Some((index, kind)) = rest.split_once(':') {
                    let kind = match kind.trim() {
                        "video" => StreamKind::Video,
                        "audio" => StreamKind::Audio,
                        _ => StreamKind::Other,
                    };
                    kinds.insert(index.trim().to_owned(), kind);
                }
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            match line
                .split(',')
                .next()
                .and_then(|index| kinds.get(index.trim()))
            {
                Some(StreamKind::Video) => video_frames += 1,
                Some(StreamKind::Audio) => audio_frames += 1,
                _ => {}
            }
        }
        DecodeReport {
            finished,
            error_lines,
            video_frames,
            audio_frames,
        }
    }
}

/// Decodes `input` fully, killed after `timeout`.
pub fn decode_check(input: &str, extra: &[&str], timeout: Duration) -> DecodeReport {
    DecodeReport::from_finished(spawn_decode(input, extra).wait_timeout(timeout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_framecrc_packet_lists() {
        let text =
            b"#tb 0: 1/1000\n#media_type 0: video\n#codec_id 0: hevc\n#dimensions 0: 320x240\n\
#tb 1: 1/44100\n#media_type 1: audio\n#codec_id 1: aac\n#sample_rate 1: 44100\n\
#channel_layout_name 1: stereo\n\
0,        920,       1000,       40,     5021, 0x8514c78f\n\
1,      44100,      44100,     1024,      133, 0x5594355b\n\
0,        960,       1120,       40,     2776, 0x516b9361, F=0x0\n";
        let report = parse_framecrc(text).unwrap();
        assert_eq!(report.streams.len(), 2);
        assert_eq!(report.streams[0].codec_name, "hevc");
        assert_eq!(report.streams[0].width, Some(320));
        assert_eq!(report.streams[1].sample_rate, Some(44_100));
        assert_eq!(report.streams[1].channels, Some(2));
        let video = report.of(StreamKind::Video);
        assert_eq!(video.len(), 2);
        assert_eq!((video[0].dts_ms, video[0].pts_ms), (Some(920), Some(1000)));
        assert!(video[0].keyframe && !video[1].keyframe);
        assert_eq!(video[1].size, 2776);
        let audio = report.of(StreamKind::Audio);
        assert_eq!(
            (audio[0].dts_ms, audio[0].codec_name.as_str()),
            (Some(1000), "aac")
        );
        assert!(parse_framecrc(b"0, x, 1, 2, 3, 4\n").is_err());
    }

    #[test]
    fn parses_packets_and_streams_with_time_bases() {
        let json = br#"{
            "packets": [
                {"codec_type": "video", "stream_index": 0, "pts": 80, "dts": 0, "size": "8733", "flags": "K_"},
                {"codec_type": "audio", "stream_index": 1, "pts": 2, "dts": 2, "size": "133", "flags": "K_"},
                {"codec_type": "video", "stream_index": 0, "pts": 200, "size": "4456", "flags": "__"}
            ],
            "streams": [
                {"index": 0, "codec_name": "h264", "codec_type": "video", "width": 320, "height": 240, "time_base": "1/1000"},
                {"index": 1, "codec_name": "aac", "codec_type": "audio", "sample_rate": "44100", "channels": 2, "time_base": "1/50"}
            ]
        }"#;
        let report = parse_probe_json(json).expect("parse");
        assert_eq!(report.streams[1].sample_rate, Some(44100));
        assert_eq!(
            report.stream(StreamKind::Video).and_then(|s| s.width),
            Some(320)
        );
        assert_eq!(
            report.packets[0],
            Packet {
                stream_kind: StreamKind::Video,
                codec_name: "h264".into(),
                dts_ms: Some(0),
                pts_ms: Some(80),
                size: 8733,
                keyframe: true
            }
        );
        assert_eq!(
            (
                report.packets[1].dts_ms,
                report.packets[1].codec_name.as_str()
            ),
            (Some(40), "aac")
        );
        assert_eq!(
            (report.packets[2].dts_ms, report.packets[2].keyframe),
            (None, false)
        );
        assert_eq!(report.relative_dts(StreamKind::Video), vec![0, i64::MIN]);
        assert!(parse_probe_json(b"{\"packets\": [").is_err());
    }

    #[test]
    fn an_overrunning_child_is_killed_at_its_deadline() {
        let args: Vec<String> = [
            "-nostdin",
            "-v",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc=rate=5",
            "-f",
            "null",
            "-",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let started = Instant::now();
        let finished = run("ffmpeg", &args, Duration::from_millis(500));
        assert!(finished.timed_out(), "{}", finished.describe());
        assert!(!finished.success());
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "kill took {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn decode_report_counts_frames_per_media_type() {
        let stdout = b"#tb 0: 1/44100\n#media_type 0: audio\n#tb 1: 1/25\n#media_type 1: video\n0, 0, 0, 1024, 4096, 0x1\n1, 0, 0, 1, 115200, 0x2\n0, 1024, 1024, 1024, 4096, 0x3\n".to_vec();
        let finished = Finished {
            name: "test".into(),
            status: None,
            stdout,
            stderr: "oops\n\n".into(),
            elapsed: Duration::ZERO,
        };
        let report = DecodeReport::from_finished(finished);
        assert_eq!((report.video_frames, report.audio_frames), (1, 2));
        assert_eq!(report.error_lines, vec!["oops".to_string()]);
    }
}
