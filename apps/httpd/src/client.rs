//! A minimal HTTP/1.1 client over a ringlet-net stream, for the sim tests
//! and the hosted self-check: requests as raw bytes, responses read with
//! httparse (a `Content-Length` body; none for HEAD and 304).
//!
//! It trusts nothing it reads: heads are bounded by
//! [`RESPONSE_HEAD_BYTES_MAX`] and
//! bodies by the caller's `body_bytes_max`.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use ringlet_net::{ConnectError, IpEndpoint, ReadError, Stack, TcpStream, WriteError};

use crate::http::RESPONSE_HEAD_BYTES_MAX;

/// The most header fields a response may have.
pub const RESPONSE_HEADERS_MAX: usize = 32;

/// A response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientResponse {
    /// The status code.
    pub status: u16,
    /// The header fields, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl ClientResponse {
    /// The first field named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a client operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientError {
    /// Connecting failed.
    Connect(ConnectError),
    /// Writing the request failed.
    Write(WriteError),
    /// Reading failed.
    Read(ReadError),
    /// The connection ended before a response (or in the middle of one).
    Closed,
    /// The response head is not HTTP, or too large.
    BadHead,
    /// The body is larger than the caller allows.
    TooLarge,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect(e) => write!(f, "connect: {e}"),
            ClientError::Write(e) => write!(f, "write: {e}"),
            ClientError::Read(e) => write!(f, "read: {e}"),
            ClientError::Closed => f.write_str("the connection ended early"),
            ClientError::BadHead => f.write_str("malformed response head"),
            ClientError::TooLarge => f.write_str("response body too large"),
        }
    }
}

impl core::error::Error for ClientError {}

/// One client connection.
#[derive(Debug)]
pub struct Client {
    /// The stream.
    pub stream: TcpStream,
    /// Bytes read and not yet taken as a response.
    pub buf: Vec<u8>,
}

impl Client {
    /// Connects to `server`.
    ///
    /// # Errors
    ///
    /// [`ClientError::Connect`].
    pub async fn connect(
        stack: &Stack,
        server: impl Into<IpEndpoint>,
    ) -> Result<Client, ClientError> {
        let stream = TcpStream::connect(stack, server)
            .await
            .map_err(ClientError::Connect)?;
        Ok(Client {
            stream,
            buf: Vec::new(),
        })
    }

    /// Sends raw bytes.
    ///
    /// # Errors
    ///
    /// [`ClientError::Write`].
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(ClientError::Write)
    }

    /// Reads more into the buffer; `Ok(false)` at the end of the stream.
    ///
    /// # Errors
    ///
    /// [`ClientError::Read`] (e.g. a reset).
    pub async fn fill(&mut self) -> Result<bool, ClientError> {
        let mut tmp = [0u8; 4096];
        let n = self
            .stream
            .read(&mut tmp)
            .await
            .map_err(ClientError::Read)?;
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n > 0)
    }

    /// The next response (no body for `head_only` or a 304).
    ///
    /// # Errors
    ///
    /// See [`ClientError`].
    pub async fn response(
        &mut self,
        head_only: bool,
        body_bytes_max: usize,
    ) -> Result<ClientResponse, ClientError> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; RESPONSE_HEADERS_MAX];
            let mut parsed = httparse::Response::new(&mut headers);
            match parsed.parse(&self.buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let status = parsed.code.ok_or(ClientError::BadHead)?;
                    let headers: Vec<(String, String)> = parsed
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                String::from(h.name),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect();
                    let len = match headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    {
                        Some((_, v)) => v.parse::<usize>().map_err(|_| ClientError::BadHead)?,
                        None => 0,
                    };
                    let len = if head_only || status == 304 { 0 } else { len };
                    if len > body_bytes_max {
                        return Err(ClientError::TooLarge);
                    }
                    while self.buf.len() < n + len {
                        if !self.fill().await? {
                            return Err(ClientError::Closed);
                        }
                    }
                    let body = self.buf[n..n + len].to_vec();
                    self.buf.drain(..n + len);
                    return Ok(ClientResponse {
                        status,
                        headers,
                        body,
                    });
                }
                Ok(httparse::Status::Partial) => {
                    if self.buf.len() > RESPONSE_HEAD_BYTES_MAX {
                        return Err(ClientError::BadHead);
                    }
                    if !self.fill().await? {
                        return Err(ClientError::Closed);
                    }
                }
                Err(_) => return Err(ClientError::BadHead),
            }
        }
    }

    /// Sends `raw` and reads one response.
    ///
    /// # Errors
    ///
    /// See [`ClientError`].
    pub async fn request(
        &mut self,
        raw: &[u8],
        head_only: bool,
        body_bytes_max: usize,
    ) -> Result<ClientResponse, ClientError> {
        self.send(raw).await?;
        self.response(head_only, body_bytes_max).await
    }

    /// Whether the server closed the connection: nothing is buffered and
    /// the stream ends (or is reset).
    pub async fn closed(&mut self) -> bool {
        self.buf.is_empty() && !matches!(self.fill().await, Ok(true))
    }
}
