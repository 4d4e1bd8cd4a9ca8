//! RTSP (RFC 2326): messages and interleaved frames on the control connection, and the
//! `Transport`, `Range` and `RTP-Info` headers. The server session that uses them is built on
//! top of these pieces.

pub mod message;
pub mod transport;

pub use message::{Headers, Input, Method, Request, Response, RtspDecoder, RtspError, RtspLimits};
pub use transport::{LowerTransport, Npt, NptRange, RtpInfo, Transport, TransportMode};
