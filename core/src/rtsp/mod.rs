//! RTSP (RFC 2326): messages and interleaved frames on the control connection, and the
//! `Transport`, `Range` and `RTP-Info` headers, and the server session built on them.

pub mod message;
pub mod server;
pub mod transport;

pub use message::{Headers, Input, Method, Request, Response, RtspDecoder, RtspError, RtspLimits};
pub use server::{RtspServerConfig, RtspServerError, RtspServerSession};
pub use transport::{LowerTransport, Npt, NptRange, RtpInfo, Transport, TransportMode};
