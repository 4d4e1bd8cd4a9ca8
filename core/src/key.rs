//! Stream names: the `app/stream` pair every protocol addresses a live stream by.

use alloc::string::{String, ToString};
use core::fmt;

/// The longest accepted `app` or `stream` part, in bytes.
///
/// Names end up in log lines, HLS file paths and API responses; a bound keeps a hostile
/// client from making any of those large.
pub const MAX_KEY_PART_LEN: usize = 128;

/// The name of one live stream: `app` and `stream`, both validated.
///
/// A valid part is non-empty, at most [`MAX_KEY_PART_LEN`] bytes, and holds no `/`, `\`, `?`,
/// `#`, whitespace or control characters, and no `..`. The parts can therefore be used as path
/// segments (HLS directories, HTTP URLs) without escaping or directory traversal.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamKey {
    app: String,
    stream: String,
}

/// Which half of a stream key an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPart {
    /// The application name (`live` in `live/demo`).
    App,
    /// The stream name (`demo` in `live/demo`).
    Stream,
}

impl fmt::Display for KeyPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyPart::App => "app",
            KeyPart::Stream => "stream",
        })
    }
}

/// Why a stream name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The part is empty.
    #[error("stream key: {part} name is empty")]
    Empty {
        /// The offending part.
        part: KeyPart,
    },
    /// The part is longer than [`MAX_KEY_PART_LEN`].
    #[error("stream key: {part} name too long ({len} > {max} bytes)")]
    TooLong {
        /// The offending part.
        part: KeyPart,
        /// Its length in bytes.
        len: usize,
        /// The largest accepted length.
        max: usize,
    },
    /// The part holds a separator, whitespace or control character.
    #[error("stream key: {part} name has a forbidden character at byte {offset}")]
    ForbiddenChar {
        /// The offending part.
        part: KeyPart,
        /// Byte offset of the character within the part.
        offset: usize,
    },
    /// The part holds `..` (or is `.`), which could walk out of a directory.
    #[error("stream key: {part} name has a dot segment at byte {offset}")]
    DotSegment {
        /// The offending part.
        part: KeyPart,
        /// Byte offset of the dots within the part.
        offset: usize,
    },
    /// A path had no `/` between app and stream.
    #[error("stream key: path has no '/' between app and stream")]
    MissingSeparator,
}

impl StreamKey {
    /// Validates `app` and `stream` and builds the key.
    ///
    /// Query strings are not stripped here (`?` is refused); call [`strip_query`] on the
    /// stream name a client sent first.
    pub fn parse(app: &str, stream: &str) -> Result<Self, KeyError> {
        validate(KeyPart::App, app)?;
        validate(KeyPart::Stream, stream)?;
        Ok(Self {
            app: app.to_string(),
            stream: stream.to_string(),
        })
    }

    /// Parses `app/stream` (a leading `/` and a trailing query string are ignored), as in
    /// `live/demo`, `/live/demo` or `live/demo?token=x`.
    pub fn from_path(path: &str) -> Result<Self, KeyError> {
        let path = strip_query(path);
        let path = path.strip_prefix('/').unwrap_or(path);
        let (app, stream) = path.split_once('/').ok_or(KeyError::MissingSeparator)?;
        Self::parse(app, stream)
    }

    /// The application name.
    pub fn app(&self) -> &str {
        &self.app
    }

    /// The stream name.
    pub fn stream(&self) -> &str {
        &self.stream
    }
}

impl fmt::Display for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.app, self.stream)
    }
}

/// `name` without its query string: RTMP clients often send `demo?token=x` as the stream name.
pub fn strip_query(name: &str) -> &str {
    match name.split_once('?') {
        Some((before, _)) => before,
        None => name,
    }
}

fn validate(part: KeyPart, name: &str) -> Result<(), KeyError> {
    if name.is_empty() {
        return Err(KeyError::Empty { part });
    }
    if name.len() > MAX_KEY_PART_LEN {
        return Err(KeyError::TooLong {
            part,
            len: name.len(),
            max: MAX_KEY_PART_LEN,
        });
    }
    if let Some((offset, _)) = name
        .char_indices()
        .find(|&(_, c)| c.is_control() || c.is_whitespace() || matches!(c, '/' | '\\' | '?' | '#'))
    {
        return Err(KeyError::ForbiddenChar { part, offset });
    }
    if name == "." {
        return Err(KeyError::DotSegment { part, offset: 0 });
    }
    if let Some(offset) = name.find("..") {
        return Err(KeyError::DotSegment { part, offset });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use proptest::prelude::*;

    #[test]
    fn accepts_ordinary_names() {
        let key = StreamKey::parse("live", "demo_1-a.b").unwrap();
        assert_eq!(key.app(), "live");
        assert_eq!(key.stream(), "demo_1-a.b");
        assert_eq!(key.to_string(), "live/demo_1-a.b");
    }

    #[test]
    fn from_path_splits_and_strips() {
        let expected = StreamKey::parse("live", "demo").unwrap();
        assert_eq!(StreamKey::from_path("live/demo").unwrap(), expected);
        assert_eq!(StreamKey::from_path("/live/demo").unwrap(), expected);
        assert_eq!(StreamKey::from_path("live/demo?token=x").unwrap(), expected);
        assert_eq!(
            StreamKey::from_path("livedemo"),
            Err(KeyError::MissingSeparator)
        );
        // A second slash lands in the stream part and is refused there.
        assert_eq!(
            StreamKey::from_path("live/a/b"),
            Err(KeyError::ForbiddenChar {
                part: KeyPart::Stream,
                offset: 1
            })
        );
    }

    #[test]
    fn strip_query_keeps_plain_names() {
        assert_eq!(strip_query("demo?token=x&y=1"), "demo");
        assert_eq!(strip_query("demo"), "demo");
        assert_eq!(strip_query("?x"), "");
    }

    #[test]
    fn refuses_bad_names() {
        assert_eq!(
            StreamKey::parse("", "demo"),
            Err(KeyError::Empty { part: KeyPart::App })
        );
        assert_eq!(
            StreamKey::parse("live", ""),
            Err(KeyError::Empty {
                part: KeyPart::Stream
            })
        );
        let long = "a".repeat(MAX_KEY_PART_LEN + 1);
        assert_eq!(
            StreamKey::parse("live", &long),
            Err(KeyError::TooLong {
                part: KeyPart::Stream,
                len: MAX_KEY_PART_LEN + 1,
                max: MAX_KEY_PART_LEN
            })
        );
        assert!(StreamKey::parse("live", &long[1..]).is_ok());
        for bad in [
            "a b", "a\tb", "a\0b", "a\u{7f}", "a\\b", "a?b", "a#b", "a\u{a0}b",
        ] {
            assert!(
                matches!(
                    StreamKey::parse("live", bad),
                    Err(KeyError::ForbiddenChar { offset: 1, .. })
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            StreamKey::parse("..", "demo"),
            Err(KeyError::DotSegment {
                part: KeyPart::App,
                offset: 0
            })
        );
        assert_eq!(
            StreamKey::parse("live", "x..y"),
            Err(KeyError::DotSegment {
                part: KeyPart::Stream,
                offset: 1
            })
        );
        assert!(StreamKey::parse(".", "demo").is_err());
    }

    proptest! {
        #[test]
        fn valid_keys_round_trip_through_display(app in "[a-zA-Z0-9_.-]{1,20}", stream in "[a-zA-Z0-9_.-]{1,20}") {
            match StreamKey::parse(&app, &stream) {
                Ok(key) => {
                    prop_assert_eq!(StreamKey::from_path(&key.to_string()).unwrap(), key);
                }
                Err(error) => {
                    let dots = app.contains("..") || stream.contains("..") || app == "." || stream == ".";
                    prop_assert!(dots, "{:?}", error);
                }
            }
        }

        #[test]
        fn any_accepted_key_is_a_safe_path_segment(app in "\\PC{0,8}", stream in ".{0,8}") {
            if let Ok(key) = StreamKey::parse(&app, &stream) {
                for part in [key.app(), key.stream()] {
                    prop_assert!(!part.is_empty() && part.len() <= MAX_KEY_PART_LEN);
                    prop_assert!(!part.contains('/') && !part.contains("..") && part != ".");
                    prop_assert!(!part.chars().any(|c| c.is_control() || c.is_whitespace()));
                }
            }
        }
    }
}
