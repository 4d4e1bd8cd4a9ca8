pub mod amf0;
pub mod flv_demux;
pub mod http_request;
pub mod rtmp_chunk;
pub mod rtmp_client;
pub mod rtmp_handshake;
pub mod rtmp_session;
pub mod rtsp_message;
