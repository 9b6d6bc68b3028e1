//! One connection's task: read heads into the sans-IO core, write the
//! responses it decides, stream file bodies from the disk.

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::future::{poll_fn, Future};
use core::pin::Pin;
use core::task::Poll;

use ringlet_executor::{sleep_until, timeout, Instant};
use ringlet_net::TcpStream;
use ringlet_storage::tar::TarStore;
use ringlet_storage::{read_bytes, BlockDevice};

use super::Shared;
use crate::access_log::AccessLine;
use crate::http::response::respond_rejection;
use crate::http::{respond, respond_error, Body, Connection, Item, Response, Status};

/// How one wait for input ended.
enum Input {
    /// `n` bytes were read into the connection's buffer.
    Data(usize),
    /// The peer sent its FIN.
    End,
    /// The socket failed (reset).
    Failed,
    /// The deadline passed.
    TimedOut,
    /// Shutdown began while the connection was idle.
    Closing,
}

/// How sending a response ended.
enum Sent {
    /// All of it; `u64` body bytes.
    Done(u64),
    /// Cut short (`u64` body bytes went out); the connection must be reset.
    Aborted(u64),
}

/// How a connection ends.
enum End {
    /// Gracefully: the stream is dropped (its FIN goes after the data).
    Close,
    /// With a reset: the socket is freed at once.
    Reset,
}

/// Serves one connection until it ends; `id` is unique per server.
pub(super) async fn serve<D: BlockDevice>(
    mut stream: TcpStream,
    id: u64,
    store: Rc<TarStore<D>>,
    shared: Rc<Shared>,
) {
    stream.set_nodelay(true);
    match run(&mut stream, id, &store, &shared).await {
        End::Close => drop(stream),
        End::Reset => stream.abort(),
    }
    shared.connection_ended(id);
}

/// The connection loop; returns how the connection must end.
async fn run<D: BlockDevice>(
    stream: &mut TcpStream,
    id: u64,
    store: &TarStore<D>,
    shared: &Shared,
) -> End {
    let config = &shared.config;
    let mut conn = Connection::new();
    let mut first = true;
    loop {
        // 1. The next request (or the end of the connection).
        let waiting_since = Instant::now();
        let idle_deadline = waiting_since
            + if first {
                config.request_timeout
            } else {
                config.keepalive_timeout
            };
        // Bytes already buffered (pipelined) start the head's clock now.
        let mut head_deadline =
            (conn.buffered() > 0).then(|| waiting_since + config.request_timeout);
        let item = loop {
            if let Some(item) = conn.next_item() {
                break Some(item);
            }
            if conn.is_done() {
                break None;
            }
            let idle = conn.buffered() == 0;
            let deadline = match head_deadline {
                Some(d) => d,
                None => idle_deadline,
            };
            match read(stream, &mut conn, deadline, shared, id, idle).await {
                Input::Data(n) => {
                    conn.commit(n);
                    if head_deadline.is_none() && n > 0 {
                        head_deadline = Some(Instant::now() + config.request_timeout);
                    }
                }
                Input::End => conn.end_of_input(),
                Input::Failed => {
                    shared.update(|s| s.socket_errors += 1);
                    return End::Reset;
                }
                Input::TimedOut if idle && head_deadline.is_none() && !first => {
                    shared.update(|s| s.idle_timeouts += 1);
                    return End::Close;
                }
                Input::TimedOut => {
                    shared.update(|s| s.request_timeouts += 1);
                    return End::Reset;
                }
                Input::Closing => return End::Close,
            }
        };
        let Some(item) = item else {
            return End::Close;
        };
        first = false;

        // 2. The response, sent.
        let started = Instant::now();
        let closing = shared.closing.get();
        let (response, method, target, head_only) = match &item {
            Item::Request(req) => (
                respond(req, store, closing),
                req.method.as_str(),
                req.raw_target.as_str(),
                req.method == crate::http::Method::Head,
            ),
            Item::Reject(rej) => (
                respond_rejection(rej),
                rej.method.as_ref().map_or("-", |m| m.as_str()),
                rej.raw_target.as_str(),
                rej.method == Some(crate::http::Method::Head),
            ),
        };
        let (status, sent, close) = send(stream, store, shared, response, head_only).await;
        let (bytes, aborted) = match sent {
            Sent::Done(n) => (n, false),
            Sent::Aborted(n) => (n, true),
        };
        shared.access(AccessLine {
            method,
            target,
            status: status.code(),
            bytes,
            micros: started.elapsed().as_micros() as u64,
        });
        if aborted {
            return End::Reset;
        }
        shared.update(|s| {
            s.responses += 1;
            s.body_bytes += bytes;
            let class = usize::from(status.code() / 100).clamp(2, 5) - 2;
            s.by_class[class] += 1;
        });
        if close {
            conn.stop();
            // Graceful: FIN after the data, bounded by the write timeout.
            let _ = timeout(config.write_timeout, stream.shutdown()).await;
            return End::Close;
        }
    }
}

/// Waits for input into `conn` until `deadline`; while `idle`, shutdown
/// ends the wait too.
async fn read(
    stream: &mut TcpStream,
    conn: &mut Connection,
    deadline: Instant,
    shared: &Shared,
    id: u64,
    idle: bool,
) -> Input {
    let mut sleep = sleep_until(deadline);
    poll_fn(|cx| {
        if idle && shared.closing(id, Some(cx.waker())) {
            return Poll::Ready(Input::Closing);
        }
        let spare = conn.spare();
        debug_assert!(!spare.is_empty(), "read without room");
        match stream.poll_read(cx, spare) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Input::End),
            Poll::Ready(Ok(n)) => return Poll::Ready(Input::Data(n)),
            Poll::Ready(Err(_)) => return Poll::Ready(Input::Failed),
            Poll::Pending => {}
        }
        if Pin::new(&mut sleep).poll(cx).is_ready() {
            return Poll::Ready(Input::TimedOut);
        }
        Poll::Pending
    })
    .await
}

/// Writes all of `buf`, bounded by the write timeout; false on a timeout
/// or a socket error.
async fn write(stream: &mut TcpStream, buf: &[u8], shared: &Shared) -> bool {
    match timeout(shared.config.write_timeout, stream.write_all(buf)).await {
        Ok(Ok(())) => true,
        Ok(Err(_)) => {
            shared.update(|s| s.socket_errors += 1);
            false
        }
        Err(_) => {
            shared.update(|s| s.write_timeouts += 1);
            false
        }
    }
}

/// Sends `response`; the status actually sent, how it went, and whether
/// the connection ends after it.
async fn send<D: BlockDevice>(
    stream: &mut TcpStream,
    store: &TarStore<D>,
    shared: &Shared,
    response: Response,
    head_only: bool,
) -> (Status, Sent, bool) {
    let Response {
        status,
        head,
        body,
        close,
    } = response;
    match body {
        Body::Empty => {
            let ok = write(stream, &head, shared).await;
            (
                status,
                if ok { Sent::Done(0) } else { Sent::Aborted(0) },
                close,
            )
        }
        Body::Static(text) => {
            let mut out = head;
            out.extend_from_slice(text);
            let ok = write(stream, &out, shared).await;
            let n = text.len() as u64;
            (
                status,
                if ok { Sent::Done(n) } else { Sent::Aborted(0) },
                close,
            )
        }
        Body::File { data_offset, len } => {
            let chunk = shared.config.chunk_bytes;
            // The first chunk goes out with the head, read before it so a
            // disk error can still be a 500.
            let first = (len as usize).min(chunk);
            let mut out: Vec<u8> = Vec::with_capacity(head.len() + first);
            out.extend_from_slice(&head);
            out.resize(head.len() + first, 0);
            if read_bytes(store.device(), data_offset, &mut out[head.len()..])
                .await
                .is_err()
            {
                shared.update(|s| s.disk_errors += 1);
                let r = respond_error(Status::InternalServerError, head_only);
                let (_, sent, _) = send_simple(stream, shared, r).await;
                return (Status::InternalServerError, sent, true);
            }
            drop(head);
            if !write(stream, &out, shared).await {
                return (status, Sent::Aborted(0), close);
            }
            let mut sent = first as u64;
            if sent < len {
                // Reuse the allocation for the rest.
                out.clear();
                out.resize(chunk, 0);
                let mut buf = out;
                while sent < len {
                    let n = ((len - sent) as usize).min(chunk);
                    if read_bytes(store.device(), data_offset + sent, &mut buf[..n])
                        .await
                        .is_err()
                    {
                        shared.update(|s| s.disk_errors += 1);
                        return (status, Sent::Aborted(sent), true);
                    }
                    if !write(stream, &buf[..n], shared).await {
                        return (status, Sent::Aborted(sent), true);
                    }
                    sent += n as u64;
                }
            }
            (status, Sent::Done(sent), close)
        }
    }
}

/// Sends a response without a file body.
async fn send_simple(
    stream: &mut TcpStream,
    shared: &Shared,
    response: Response,
) -> (Status, Sent, bool) {
    let mut out = response.head;
    let n = response.body.len();
    if let Body::Static(text) = response.body {
        out.extend_from_slice(text);
    }
    let ok = write(stream, &out, shared).await;
    (
        response.status,
        if ok { Sent::Done(n) } else { Sent::Aborted(0) },
        response.close,
    )
}
