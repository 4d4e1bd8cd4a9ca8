//! RTMP commands (NetConnection and NetStream calls) as AMF0 values: reading the ones peers
//! send and building the ones we answer with. Shared by the server and client sessions.

use alloc::string::String;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};

use crate::amf0::{self, Amf0Error, Amf0Value};
use crate::wire::Reader;

/// A decoded command message: `name`, transaction id, command object, arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// The command or response name (`connect`, `publish`, `_result`, `onStatus`, ...).
    pub name: String,
    /// The transaction id (0 when no response is expected).
    pub transaction: f64,
    /// The command object (often null).
    pub object: Amf0Value,
    /// Remaining arguments.
    pub args: Vec<Amf0Value>,
}

impl Command {
    /// Decodes an AMF0 command body. `amf3` is true for message type 17, whose body starts with
    /// a format byte (0) before otherwise AMF0-encoded values.
    pub fn decode(body: &[u8], amf3: bool) -> Result<Command, CommandError> {
        let body = if amf3 {
            body.get(1..).unwrap_or_default()
        } else {
            body
        };
        let mut reader = Reader::new(body);
        let name = match amf0::decode(&mut reader)? {
            Amf0Value::String(name) => name,
            _ => return Err(CommandError::NoName),
        };
        let transaction = if reader.is_empty() {
            0.0
        } else {
            amf0::decode(&mut reader)?.as_number().unwrap_or(0.0)
        };
        let object = if reader.is_empty() {
            Amf0Value::Null
        } else {
            amf0::decode(&mut reader)?
        };
        let mut args = Vec::new();
        while !reader.is_empty() {
            args.push(amf0::decode(&mut reader)?);
        }
        Ok(Command {
            name,
            transaction,
            object,
            args,
        })
    }

    /// The first argument as a string (the stream name of `publish` and `play`).
    pub fn first_string_arg(&self) -> Option<&str> {
        self.args.first().and_then(Amf0Value::as_str)
    }
}

/// Why a command message could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The body is not valid AMF0.
    #[error(transparent)]
    Amf0(#[from] Amf0Error),
    /// The body does not start with the command name string.
    #[error("command message does not start with a name string")]
    NoName,
}

/// Encodes a command: name, transaction id, then `values`.
pub fn encode_command(name: &str, transaction: f64, values: &[Amf0Value]) -> Bytes {
    let mut out = BytesMut::with_capacity(128);
    amf0::encode_str(name, &mut out);
    amf0::encode(&Amf0Value::Number(transaction), &mut out);
    amf0::encode_all(values, &mut out);
    out.freeze()
}

/// The info object of an `onStatus` or `_result` status: level, code, description.
pub fn status_object(level: &str, code: &str, description: &str) -> Amf0Value {
    Amf0Value::object([
        ("level", Amf0Value::string(level)),
        ("code", Amf0Value::string(code)),
        ("description", Amf0Value::string(description)),
    ])
}

/// Encodes `onStatus(0, null, {level, code, description})`.
pub fn on_status(level: &str, code: &str, description: &str) -> Bytes {
    encode_command(
        "onStatus",
        0.0,
        &[Amf0Value::Null, status_object(level, code, description)],
    )
}

/// Splits `name?query` and returns the name; RTMP clients often append tokens to names.
pub fn strip_query(name: &str) -> &str {
    name.split_once('?').map_or(name, |(name, _)| name)
}
