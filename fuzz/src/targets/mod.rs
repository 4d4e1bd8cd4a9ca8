pub mod amf0;
pub mod http_request;
pub mod rtmp_session;
