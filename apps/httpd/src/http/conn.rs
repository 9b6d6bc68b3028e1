//! One connection's input side: a bounded buffer of received bytes and a
//! bounded queue of parsed requests, answered in order.
//!
//! # States
//!
//! ```text
//!            receive/commit (parses into the queue)
//!   Open ───────────────────────────────────────────► Open
//!    │ (1) a request with keep_alive = false, or a rejection, is queued
//!    │ (2) stop(): the server ends the connection after a response
//!    ▼
//!   Stopped: nothing more is parsed; the buffer is dropped
//!    │ (3) the queue is empty
//!    ▼
//!   done (is_done): close the connection
//!
//!   Open ──(4) end_of_input()──► InputEnded: no more bytes; what is queued
//!                                or still buffered is parsed and answered;
//!                                a partial head at the end is dropped
//!   InputEnded ──(5) queue and buffer empty──► done
//! ```
//!
//! Bounds: the buffer holds at most [`HEAD_BYTES_MAX`] bytes (so a head
//! longer than that is refused while it arrives: 414 or 431, see
//! [`request`](super::request)), and at most [`PIPELINE_DEPTH_MAX`]
//! requests are queued; while the queue is full, [`Connection::spare`] is
//! empty, so the server reads nothing more and TCP's window closes.

use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;

use super::request::{parse, Parse, Rejection, Request};
use super::{HEAD_BYTES_MAX, PIPELINE_DEPTH_MAX};

/// A queued request, or a refused head (the last item of a connection).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A request to answer with [`respond`](super::respond).
    Request(Request),
    /// A refused head to answer with
    /// [`respond_rejection`](super::response::respond_rejection).
    Reject(Rejection),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Open,
    Stopped,
    InputEnded,
}

/// The input side of one connection (see the module docs).
#[derive(Debug)]
pub struct Connection {
    buf: Vec<u8>,
    /// Unparsed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    queue: VecDeque<Item>,
    state: State,
    /// Requests queued so far (rejections included).
    parsed: u64,
}

impl Default for Connection {
    fn default() -> Self {
        Connection::new()
    }
}

impl Connection {
    /// A fresh connection.
    pub fn new() -> Connection {
        Connection {
            buf: vec![0; HEAD_BYTES_MAX],
            start: 0,
            end: 0,
            queue: VecDeque::with_capacity(PIPELINE_DEPTH_MAX),
            state: State::Open,
            parsed: 0,
        }
    }

    /// Where to put received bytes (then call [`commit`](Self::commit)).
    /// Empty when nothing more may be read now: the queue is full, the
    /// connection is stopped, or the input ended.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.state != State::Open || self.queue.len() >= PIPELINE_DEPTH_MAX {
            return &mut [];
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.buf[self.end..]
    }

    /// Takes `n` bytes written into [`spare`](Self::spare) and parses what
    /// is complete.
    ///
    /// # Panics
    ///
    /// If `n` is more than the spare room (a server bug).
    pub fn commit(&mut self, n: usize) {
        assert!(
            n <= self.buf.len() - self.end,
            "committed more than the spare room"
        );
        assert!(
            n == 0 || (self.state == State::Open && self.queue.len() < PIPELINE_DEPTH_MAX),
            "committed without spare room"
        );
        self.end += n;
        self.parse_queued();
    }

    /// Copies as much of `data` as there is room for; returns how much.
    pub fn receive(&mut self, data: &[u8]) -> usize {
        let spare = self.spare();
        let n = spare.len().min(data.len());
        spare[..n].copy_from_slice(&data[..n]);
        self.commit(n);
        n
    }

    /// The peer sent its FIN: no more input (transition 4). Queued and
    /// buffered requests are still answered; a partial head at the end is
    /// dropped.
    pub fn end_of_input(&mut self) {
        if self.state == State::Open {
            self.state = State::InputEnded;
            self.parse_queued();
        }
    }

    /// Ends the connection after what was already taken (transition 2):
    /// nothing more is parsed or answered.
    pub fn stop(&mut self) {
        self.state = State::Stopped;
        self.queue.clear();
        self.start = 0;
        self.end = 0;
    }

    /// The next item to answer, in request order.
    pub fn next_item(&mut self) -> Option<Item> {
        let item = self.queue.pop_front();
        // Room in the queue again: requests already buffered can be parsed.
        self.parse_queued();
        item
    }

    /// Whether the server should read: nothing is queued and more input may
    /// come.
    pub fn wants_input(&self) -> bool {
        self.queue.is_empty() && self.state == State::Open
    }

    /// Whether the connection is over: nothing is queued and nothing more
    /// will be parsed (transitions 3 and 5).
    pub fn is_done(&self) -> bool {
        self.queue.is_empty()
            && match self.state {
                State::Open => false,
                State::Stopped => true,
                State::InputEnded => self.start == self.end,
            }
    }

    /// Bytes received and not yet parsed (part of the next head).
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Items queued.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Items queued over the connection's life.
    pub fn parsed(&self) -> u64 {
        self.parsed
    }

    fn parse_queued(&mut self) {
        while self.state != State::Stopped && self.queue.len() < PIPELINE_DEPTH_MAX {
            // Empty lines between requests are skipped (RFC 9112 §2.2).
            while self.start < self.end {
                match self.buf[self.start] {
                    b'\n' => self.start += 1,
                    b'\r' if self.start + 1 < self.end && self.buf[self.start + 1] == b'\n' => {
                        self.start += 2
                    }
                    _ => break,
                }
            }
            if self.start == self.end {
                self.start = 0;
                self.end = 0;
                return;
            }
            match parse(&self.buf[self.start..self.end]) {
                Parse::Partial => {
                    // A head cannot be longer than the buffer, and parse()
                    // refuses a partial head that fills it.
                    debug_assert!(self.end - self.start < HEAD_BYTES_MAX);
                    if self.state == State::InputEnded {
                        // It will never be completed (transition 4).
                        self.start = 0;
                        self.end = 0;
                    }
                    return;
                }
                Parse::Complete(req, n) => {
                    self.start += n;
                    self.parsed += 1;
                    if !req.keep_alive {
                        self.stop_parsing();
                    }
                    self.queue.push_back(Item::Request(req));
                }
                Parse::Rejected(rejection) => {
                    self.parsed += 1;
                    self.stop_parsing();
                    self.queue.push_back(Item::Reject(rejection));
                }
            }
        }
    }

    /// Transition 1: keep what is queued, parse nothing more.
    fn stop_parsing(&mut self) {
        self.state = State::Stopped;
        self.start = 0;
        self.end = 0;
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::http::request::{HeadError, Method};
    use alloc::format;

    fn req(path: &str) -> Vec<u8> {
        format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n").into_bytes()
    }

    fn target(item: Item) -> alloc::string::String {
        match item {
            Item::Request(r) => r.raw_target,
            Item::Reject(r) => panic!("rejected: {r:?}"),
        }
    }

    #[test]
    fn pipelined_requests_come_out_in_order() {
        let mut c = Connection::new();
        let mut input = Vec::new();
        for i in 0..5 {
            input.extend_from_slice(&req(&format!("/{i}")));
        }
        assert_eq!(c.receive(&input), input.len());
        assert_eq!(c.queued(), 5);
        for i in 0..5 {
            assert_eq!(target(c.next_item().unwrap()), format!("/{i}"));
        }
        assert!(c.next_item().is_none());
        assert!(c.wants_input() && !c.is_done());
        assert_eq!(c.parsed(), 5);
    }

    #[test]
    fn byte_by_byte_input_parses_the_same() {
        let mut c = Connection::new();
        let input = [req("/a"), b"\r\n".to_vec(), req("/b")].concat();
        for b in &input {
            assert_eq!(c.receive(core::slice::from_ref(b)), 1);
        }
        assert_eq!(target(c.next_item().unwrap()), "/a");
        assert_eq!(target(c.next_item().unwrap()), "/b");
        assert_eq!(c.buffered(), 0);
    }

    #[test]
    fn the_queue_is_bounded_and_refills_from_the_buffer() {
        let mut c = Connection::new();
        let one = req("/x");
        let many: Vec<u8> = one.repeat(PIPELINE_DEPTH_MAX + 3);
        let took = c.receive(&many);
        assert_eq!(c.queued(), PIPELINE_DEPTH_MAX);
        assert_eq!(took, many.len(), "the rest waits in the buffer");
        assert!(c.spare().is_empty(), "a full queue reads nothing");
        assert_eq!(c.buffered(), 3 * one.len());
        for _ in 0..PIPELINE_DEPTH_MAX + 3 {
            target(c.next_item().unwrap());
        }
        assert!(c.next_item().is_none());
        assert_eq!(c.buffered(), 0);
        assert!(!c.spare().is_empty());
    }

    #[test]
    fn close_requests_stop_parsing_what_follows() {
        let mut c = Connection::new();
        let input = [
            req("/a"),
            b"GET /b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n".to_vec(),
            req("/c"),
        ]
        .concat();
        c.receive(&input);
        assert_eq!(c.queued(), 2);
        assert!(!c.wants_input());
        assert!(c.spare().is_empty());
        assert_eq!(target(c.next_item().unwrap()), "/a");
        assert!(!c.is_done());
        assert_eq!(target(c.next_item().unwrap()), "/b");
        assert!(c.is_done());
    }

    #[test]
    fn http10_without_keep_alive_is_the_last_request() {
        let mut c = Connection::new();
        c.receive(b"GET /a HTTP/1.0\r\n\r\nGET /b HTTP/1.0\r\n\r\n");
        assert_eq!(target(c.next_item().unwrap()), "/a");
        assert!(c.next_item().is_none() && c.is_done());
        let mut c = Connection::new();
        c.receive(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\n");
        assert_eq!(target(c.next_item().unwrap()), "/a");
        assert_eq!(target(c.next_item().unwrap()), "/b");
        assert!(c.is_done());
    }

    #[test]
    fn a_rejection_is_the_last_item() {
        let mut c = Connection::new();
        let input = [req("/a"), b"GET / HTTP/1.1\r\n\r\n".to_vec(), req("/c")].concat();
        c.receive(&input);
        assert_eq!(target(c.next_item().unwrap()), "/a");
        let Some(Item::Reject(r)) = c.next_item() else {
            panic!()
        };
        assert_eq!(r.error, HeadError::MissingHost);
        assert_eq!(r.method, Some(Method::Get));
        assert!(c.next_item().is_none() && c.is_done());
    }

    #[test]
    fn oversized_heads_are_refused_while_they_arrive() {
        // 414: no line end within the limit.
        let mut c = Connection::new();
        let mut line = Vec::from(&b"GET /"[..]);
        line.resize(crate::http::REQUEST_LINE_BYTES_MAX + 1, b'a');
        c.receive(&line);
        let Some(Item::Reject(r)) = c.next_item() else {
            panic!()
        };
        assert_eq!(r.error, HeadError::RequestLineTooLong);
        // 431: the buffer fills with header bytes.
        let mut c = Connection::new();
        c.receive(b"GET / HTTP/1.1\r\nHost: h\r\nX: ");
        let filler = vec![b'v'; HEAD_BYTES_MAX];
        let took = c.receive(&filler);
        assert!(took < filler.len());
        assert_eq!(c.buffered(), 0, "a refused head is dropped");
        let Some(Item::Reject(r)) = c.next_item() else {
            panic!()
        };
        assert_eq!(r.error, HeadError::HeadTooLarge);
        assert!(c.is_done() && c.spare().is_empty());
    }

    #[test]
    fn end_of_input_answers_what_is_queued_and_drops_a_partial_head() {
        let mut c = Connection::new();
        c.receive(&[req("/a"), b"GET /b HT".to_vec()].concat());
        c.end_of_input();
        assert!(c.spare().is_empty());
        assert_eq!(target(c.next_item().unwrap()), "/a");
        assert!(c.next_item().is_none() && c.is_done());
    }

    #[test]
    fn end_of_input_still_answers_requests_beyond_the_queue() {
        // Found by the fuzz target: more pipelined requests than the queue
        // holds, then the FIN; the ones still in the buffer were dropped.
        let mut c = Connection::new();
        let n = PIPELINE_DEPTH_MAX + 5;
        let mut input: Vec<u8> = (0..n).flat_map(|i| req(&format!("/{i}"))).collect();
        input.extend_from_slice(b"GET /partial HT");
        assert_eq!(c.receive(&input), input.len());
        assert_eq!(c.queued(), PIPELINE_DEPTH_MAX);
        c.end_of_input();
        for i in 0..n {
            assert!(!c.is_done());
            assert_eq!(target(c.next_item().unwrap()), format!("/{i}"));
        }
        assert!(c.next_item().is_none() && c.is_done());
        assert_eq!(c.buffered(), 0);
    }

    #[test]
    fn stop_drops_everything_queued() {
        let mut c = Connection::new();
        c.receive(&[req("/a"), req("/b")].concat());
        target(c.next_item().unwrap());
        c.stop();
        assert!(c.next_item().is_none() && c.is_done() && !c.wants_input());
    }

    #[test]
    fn empty_lines_alone_never_fill_the_buffer() {
        let mut c = Connection::new();
        for _ in 0..10 {
            let crlf = b"\r\n".repeat(HEAD_BYTES_MAX / 2);
            assert_eq!(c.receive(&crlf), crlf.len());
            assert_eq!(c.buffered(), 0);
        }
        // A CR waiting for its LF stays.
        c.receive(b"\r");
        assert_eq!(c.buffered(), 1);
        c.receive(&req("/z")[..]);
        // "\r" + "GET" is not an empty line: httparse refuses it.
        assert!(matches!(c.next_item(), Some(Item::Reject(_))));
    }

    #[test]
    #[should_panic(expected = "committed more than the spare room")]
    fn committing_too_much_is_a_bug() {
        let mut c = Connection::new();
        c.commit(HEAD_BYTES_MAX + 1);
    }
}
