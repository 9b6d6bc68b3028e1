//! reactor-xen's xenstore client (`Xenstore`) against a hostile daemon: a
//! sim guest's real xenstore page, the client's calls in flight (read,
//! directory, write, get-permissions, transaction start, watch, with the
//! cleanups their drops send), and the fuzzer as xenstored: it takes the
//! requests from the `req` ring and answers on the `rsp` ring with replies
//! of the right type, error replies, replies of another type, replies to
//! unknown ids, watch events, raw bytes, or a broken ring index.
//!
//! Input: `[(op, a, b, payload_len, payload...)*]` (see `run`).
//!
//! The daemon records every reply it sends, by request id. Checked for every
//! call that completes:
//! - nothing panics; every error has a message;
//! - the result is what one of the replies sent to the call's request id
//!   means (which one the client reads first depends on when it looks: a
//!   reply sent before the request exists is an unknown id): the payload
//!   (read), the parsed directory or permission list, `OK`, a transaction
//!   id; the errno it named; `TypeMismatch`/`UnknownType`/`UnexpectedType`
//!   for a reply of another type; the parser's error for a malformed
//!   payload; `Disconnected` only once the ring broke. So no reply completes
//!   a call it was not sent to;
//! - a watch yields only paths sent as events with its token, in order.
#![no_main]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::mem::offset_of;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll, Waker};

use futures::Stream;
use libfuzzer_sys::fuzz_target;
use ringlet_xen::abi::xs_wire::{
    XenstoreDomainInterface, XsdSockmsg, XsdSockmsgType, XENSTORE_PAYLOAD_MAX, XENSTORE_RING_SIZE,
};
use ringlet_xen::guest::Guest;
use ringlet_xen::hypervisor::PAGE_SIZE;
use ringlet_xen::page::SharedMem;
use ringlet_xen::sim::{DomainConfig, SimConfig, SimXen};
use ringlet_xen::xenstore::ring::{ByteRing, Consumer, Producer};
use ringlet_xen::xenstore::wire::{self, ProtocolError};
use ringlet_xen::xenstore::{Permission, RequestError, Watch, WatchError, Xenstore, XenstoreError};

/// With `FUZZ_TRACE` set, prints what the daemon takes and sends (to
/// understand a crash input).
fn trace(args: std::fmt::Arguments<'_>) {
    thread_local! {
        static ON: bool = std::env::var_os("FUZZ_TRACE").is_some();
    }
    if ON.with(|on| *on) {
        eprintln!("{args}");
    }
}

/// Actions per input.
const OPS_MAX: usize = 128;
/// Calls in flight at once (the client allows 16 requests in flight).
const CALLS_MAX: usize = 12;

struct World {
    _sim: SimXen,
    guest: Guest,
}

thread_local! {
    static WORLD: RefCell<Option<World>> = const { RefCell::new(None) };
}

/// What a call returned.
#[derive(Debug)]
enum Outcome {
    Read(Result<Vec<u8>, RequestError>),
    Directory(Result<Vec<String>, RequestError>),
    Write(Result<(), RequestError>),
    Perms(Result<Vec<Permission>, RequestError>),
    TxStart(Result<u32, RequestError>),
    Watch(Result<Watch, WatchError>),
}

type Call<'a> = Pin<Box<dyn Future<Output = Outcome> + 'a>>;

/// A reply the daemon sent.
#[derive(Clone, Debug)]
struct Reply {
    type_: u32,
    payload: Vec<u8>,
}

/// A request the daemon took.
#[derive(Debug)]
struct Req {
    type_: XsdSockmsgType,
    req_id: u32,
    payload: Vec<u8>,
}

type Ring<'a> = ByteRing<'a, SharedMem<'a>>;

fn rings(mem: SharedMem<'_>) -> (Ring<'_>, Ring<'_>) {
    type X = XenstoreDomainInterface;
    let part = |off| mem.get(off, XENSTORE_RING_SIZE).expect("ring in the page");
    (
        ByteRing::new(
            part(offset_of!(X, req)),
            mem.atomic_u32(offset_of!(X, req_cons)),
            mem.atomic_u32(offset_of!(X, req_prod)),
        ),
        ByteRing::new(
            part(offset_of!(X, rsp)),
            mem.atomic_u32(offset_of!(X, rsp_cons)),
            mem.atomic_u32(offset_of!(X, rsp_prod)),
        ),
    )
}

/// The daemon's side.
struct Daemon<'a> {
    /// The published `rsp_prod` (scribbled to break the ring).
    rsp_prod: &'a AtomicU32,
    req: Ring<'a>,
    rsp: Ring<'a>,
    cons: Consumer,
    prod: Producer,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    taken: Vec<Req>,
    /// req_id -> every reply sent to it, in order.
    replies: BTreeMap<u32, Vec<Reply>>,
    /// token -> event paths sent, in order.
    events: BTreeMap<String, Vec<String>>,
    /// The daemon broke the stream (index or length).
    broke: bool,
}

impl Daemon<'_> {
    /// Takes every whole request the client wrote.
    fn take(&mut self) {
        let mut buf = [0u8; 512];
        loop {
            let n = self.cons.read(&self.req, &mut buf).expect("the client keeps its indices");
            if n == 0 {
                break;
            }
            self.inbuf.extend_from_slice(&buf[..n]);
        }
        while self.inbuf.len() >= XsdSockmsg::SIZE {
            let h = XsdSockmsg::from_bytes(self.inbuf[..16].try_into().unwrap());
            let len = h.len as usize;
            assert!(len <= XENSTORE_PAYLOAD_MAX, "client sent {len} bytes");
            if self.inbuf.len() < 16 + len {
                break;
            }
            let type_ = XsdSockmsgType::try_from(h.type_).expect("client sent a known type");
            let payload = self.inbuf[16..16 + len].to_vec();
            self.inbuf.drain(..16 + len);
            trace(format_args!("took {type_:?} id {} {:?}", h.req_id, String::from_utf8_lossy(&payload)));
            self.taken.push(Req { type_, req_id: h.req_id, payload });
        }
    }

    fn send(&mut self, type_: u32, req_id: u32, payload: &[u8]) {
        trace(format_args!("send type {type_} id {req_id} {:?}", String::from_utf8_lossy(payload)));
        let h = XsdSockmsg { type_, req_id, tx_id: 0, len: payload.len() as u32 };
        if payload.len() > XENSTORE_PAYLOAD_MAX {
            self.broke = true;
        } else if type_ != XsdSockmsgType::WatchEvent as u32 {
            self.replies.entry(req_id).or_default().push(Reply { type_, payload: payload.to_vec() });
        }
        self.outbuf.extend_from_slice(&h.to_bytes());
        self.outbuf.extend_from_slice(payload);
        self.flush();
    }

    /// Writes what fits of the pending bytes.
    fn flush(&mut self) {
        let n = self.prod.write(&self.rsp, &self.outbuf).expect("the client keeps its indices");
        self.outbuf.drain(..n);
    }
}

/// A call's result, comparable.
#[derive(Debug, PartialEq)]
enum Got {
    Err(RequestError),
    Bytes(Vec<u8>),
    Names(Vec<String>),
    Unit,
    Perms(Vec<Permission>),
    Id(u32),
}

fn got(o: &Outcome) -> Got {
    fn g<T>(r: &Result<T, RequestError>, ok: impl FnOnce(&T) -> Got) -> Got {
        match r {
            Ok(v) => ok(v),
            Err(e) => Got::Err(e.clone()),
        }
    }
    match o {
        Outcome::Read(r) => g(r, |v| Got::Bytes(v.clone())),
        Outcome::Directory(r) => g(r, |v| Got::Names(v.clone())),
        Outcome::Write(r) => g(r, |_| Got::Unit),
        Outcome::Perms(r) => g(r, |v| Got::Perms(v.clone())),
        Outcome::TxStart(r) => g(r, |v| Got::Id(*v)),
        Outcome::Watch(r) => match r {
            Ok(_) => Got::Unit,
            Err(WatchError::Request(e)) => Got::Err(e.clone()),
            Err(e) => panic!("watch: {e:?}"),
        },
    }
}

/// What reply `r` to a request of `kind` makes the call return.
fn expected(kind: XsdSockmsgType, r: &Reply) -> Got {
    let payload = r.payload.as_slice();
    let proto = |res: Result<Got, ProtocolError>| res.unwrap_or_else(|e| Got::Err(RequestError::Protocol(e)));
    match XsdSockmsgType::try_from(r.type_) {
        Err(_) => Got::Err(RequestError::Protocol(ProtocolError::UnknownType(r.type_))),
        Ok(t) if t == kind => match kind {
            XsdSockmsgType::Read => Got::Bytes(payload.to_vec()),
            XsdSockmsgType::Directory => proto(
                wire::parse_directory(payload).map(|v| Got::Names(v.into_iter().map(String::from).collect())),
            ),
            XsdSockmsgType::GetPerms => proto(wire::parse_permissions(payload).map(Got::Perms)),
            XsdSockmsgType::TransactionStart => proto(wire::parse_transaction_id(payload).map(Got::Id)),
            _ => proto(wire::parse_ok(payload).map(|()| Got::Unit)),
        },
        Ok(XsdSockmsgType::Error) => {
            let h = XsdSockmsg { type_: r.type_, req_id: 1, tx_id: 0, len: payload.len() as u32 };
            match wire::decode(wire::decode_header(h).expect("an error header"), payload) {
                Ok(wire::Message::Error { error, .. }) => Got::Err(RequestError::Xenstore(error)),
                Err(e) => Got::Err(RequestError::Protocol(e)),
                Ok(other) => panic!("decoded an error reply as {other:?}"),
            }
        }
        Ok(t) => Got::Err(RequestError::Protocol(
            match wire::decode_header(XsdSockmsg { type_: r.type_, req_id: 1, tx_id: 0, len: 0 }) {
                Err(e) => e,
                Ok(_) => ProtocolError::TypeMismatch { expected: kind, got: t },
            },
        )),
    }
}

fn error_of(o: &Outcome) -> Option<RequestError> {
    match o {
        Outcome::Read(r) => r.as_ref().err().cloned(),
        Outcome::Directory(r) => r.as_ref().err().cloned(),
        Outcome::Write(r) => r.as_ref().err().cloned(),
        Outcome::Perms(r) => r.as_ref().err().cloned(),
        Outcome::TxStart(r) => r.as_ref().err().cloned(),
        Outcome::Watch(r) => match r {
            Err(WatchError::Request(e)) => Some(e.clone()),
            Err(e) => panic!("watch: {e:?}"),
            Ok(_) => None,
        },
    }
}

fn run(w: &World, data: &[u8]) {
    let mem = w.guest.xenstore_mem().expect("a xenstore page");
    mem.fill(0, PAGE_SIZE, 0);
    let xs = Xenstore::new(&w.guest).expect("the client connects");
    let (req, rsp) = rings(mem);
    let mut d = Daemon {
        rsp_prod: mem.atomic_u32(offset_of!(XenstoreDomainInterface, rsp_prod)),
        cons: Consumer::attach(&req).unwrap(),
        prod: Producer::attach(&rsp).unwrap(),
        req,
        rsp,
        inbuf: Vec::new(),
        outbuf: Vec::new(),
        taken: Vec::new(),
        replies: BTreeMap::new(),
        events: BTreeMap::new(),
        broke: false,
    };
    let xs = &xs;
    // (path, kind, call)
    let mut calls: Vec<(String, XsdSockmsgType, Call<'_>)> = Vec::new();
    let mut watches: Vec<(Watch, usize)> = Vec::new();
    let mut next = 0u32;
    let mut tx_started = false;
    let mut cx = Context::from_waker(Waker::noop());
    let mut rest = data;
    let mut ops = 0;

    let settle = |path: &str, kind: XsdSockmsgType, o: &Outcome, d: &mut Daemon<'_>| {
        // The daemon may have answered an id it guessed: read what the
        // client sent first.
        d.take();
        if let Some(e) = error_of(o) {
            assert!(!e.to_string().is_empty());
            if let RequestError::Disconnected(_) = e {
                assert!(xs.broken().is_some(), "Disconnected on a sound ring");
                return;
            }
        }
        // The request the call made (its path is in the payload).
        let req = d
            .taken
            .iter()
            .rev()
            .find(|r| r.type_ == kind && r.payload.starts_with(format!("{path}\0").as_bytes()))
            .unwrap_or_else(|| panic!("{kind:?} {path}: completed ({o:?}) but never sent"));
        // Which reply the client read first depends on when it looked (a
        // reply sent before the request existed is an unknown id), so the
        // outcome must be what one of the replies to its id means.
        let replies = d.replies.get(&req.req_id).map(Vec::as_slice).unwrap_or_default();
        let g = got(o);
        assert!(
            replies.iter().any(|r| expected(kind, r) == g),
            "{kind:?} {path} (id {}): {g:?} is what none of its replies {replies:?} means",
            req.req_id
        );
    };

    while let Some((&[op, a, b, plen], tail)) = rest.split_first_chunk::<4>() {
        let plen = usize::from(plen).min(tail.len());
        let (payload, tail) = tail.split_at(plen);
        rest = tail;
        ops += 1;
        if ops > OPS_MAX {
            break;
        }
        match op % 12 {
            // A new call.
            0 | 1 => {
                if calls.len() >= CALLS_MAX {
                    continue;
                }
                // One transaction start per input: its request carries no
                // path to tell two apart.
                if a % 6 == 4 && tx_started {
                    continue;
                }
                tx_started |= a % 6 == 4;
                next += 1;
                let path = format!("p{next}");
                let p = path.clone();
                let (kind, call): (XsdSockmsgType, Call<'_>) = match a % 6 {
                    0 => (XsdSockmsgType::Read, Box::pin(async move { Outcome::Read(xs.read(&p).await) })),
                    1 => (
                        XsdSockmsgType::Directory,
                        Box::pin(async move { Outcome::Directory(xs.directory(&p).await) }),
                    ),
                    2 => (
                        XsdSockmsgType::Write,
                        Box::pin(async move { Outcome::Write(xs.write(&p, b"v").await) }),
                    ),
                    3 => (
                        XsdSockmsgType::GetPerms,
                        Box::pin(async move { Outcome::Perms(xs.get_permissions(&p).await) }),
                    ),
                    4 => (
                        XsdSockmsgType::TransactionStart,
                        Box::pin(async move { Outcome::TxStart(xs.transaction_start().await.map(|t| t.id())) }),
                    ),
                    _ => (XsdSockmsgType::Watch, Box::pin(async move { Outcome::Watch(xs.watch(&p).await) })),
                };
                // A transaction start's payload is "\0": its path is "".
                let path = if kind == XsdSockmsgType::TransactionStart { String::new() } else { path };
                calls.push((path, kind, call));
            }
            // Poll every call and watch.
            2 | 3 => {
                let mut i = 0;
                while i < calls.len() {
                    if let Poll::Ready(o) = calls[i].2.as_mut().poll(&mut cx) {
                        trace(format_args!("{:?} {}: {o:?}", calls[i].1, calls[i].0));
                        let (path, kind, _) = calls.swap_remove(i);
                        settle(&path, kind, &o, &mut d);
                        if let Outcome::Watch(Ok(watch)) = o {
                            watches.push((watch, 0));
                        }
                    } else {
                        i += 1;
                    }
                }
                for (watch, seen) in &mut watches {
                    while let Poll::Ready(ev) = Pin::new(&mut *watch).poll_next(&mut cx) {
                        let Some(ev) = ev else {
                            assert!(xs.broken().is_some(), "a watch ended on a sound ring");
                            break;
                        };
                        // Our token is in the XS_WATCH request we sent.
                        let token = d
                            .taken
                            .iter()
                            .find(|r| r.type_ == XsdSockmsgType::Watch && r.payload.starts_with(format!("{}\0", watch.path()).as_bytes()))
                            .map(|r| String::from_utf8_lossy(&r.payload[watch.path().len() + 1..r.payload.len() - 1]).into_owned())
                            .expect("the watch's request");
                        let sent = d.events.get(&token).map(Vec::as_slice).unwrap_or_default();
                        assert!(*seen < sent.len(), "event {ev:?} never sent for {token}");
                        // Events may be dropped when the queue is full, never reordered.
                        let at = sent[*seen..].iter().position(|p| *p == ev.path).expect("event in order");
                        *seen += at + 1;
                    }
                }
            }
            // The daemon takes requests.
            4 => d.take(),
            // A reply of the right type to the `b`-th request taken.
            5 | 6 => {
                if let Some(r) = d.taken.get(usize::from(b) % d.taken.len().max(1)) {
                    let (t, id) = (r.type_ as u32, r.req_id);
                    let canned: &[u8] = match (a % 4, r.type_) {
                        (0, XsdSockmsgType::TransactionStart) => b"7\0",
                        (0, XsdSockmsgType::Directory) => b"a\0bb\0",
                        (0, XsdSockmsgType::GetPerms) => b"n0\0r5\0",
                        (0, XsdSockmsgType::Read) => b"value",
                        (0, _) => b"OK\0",
                        _ => payload,
                    };
                    d.send(t, id, canned);
                }
            }
            // An error reply, named or raw.
            7 => {
                if let Some(r) = d.taken.get(usize::from(b) % d.taken.len().max(1)) {
                    let id = r.req_id;
                    let e = XenstoreError::ALL[usize::from(a) % XenstoreError::ALL.len()];
                    let named = format!("{}\0", e.name());
                    let p = if a & 0x80 == 0 { named.as_bytes() } else { payload };
                    d.send(XsdSockmsgType::Error as u32, id, p);
                }
            }
            // A reply of another (or unknown) type, or to an unknown id.
            8 => {
                let id = match d.taken.get(usize::from(b) % d.taken.len().max(1)) {
                    Some(r) if a & 0x80 == 0 => r.req_id,
                    _ => u32::from(b) << 8 | u32::from(a),
                };
                d.send(u32::from(a % 24), id, payload);
            }
            // A watch event for a token we registered (or any token).
            9 => {
                let tokens: Vec<String> = d
                    .taken
                    .iter()
                    .filter(|r| r.type_ == XsdSockmsgType::Watch)
                    .filter_map(|r| r.payload.split(|&c| c == 0).nth(1).map(|t| String::from_utf8_lossy(t).into_owned()))
                    .collect();
                let token = match tokens.get(usize::from(b) % tokens.len().max(1)) {
                    Some(t) if a & 0x80 == 0 => t.clone(),
                    _ => String::from_utf8_lossy(payload).replace('\0', ""),
                };
                let path = format!("ev{a}");
                if !token.is_empty() {
                    d.events.entry(token.clone()).or_default().push(path.clone());
                }
                d.send(XsdSockmsgType::WatchEvent as u32, 0, format!("{path}\0{token}\0").as_bytes());
            }
            // Raw bytes into the stream (a header among them is untracked:
            // only when it breaks nothing the daemon knows of).
            10 => {
                if a == 0 && !payload.is_empty() {
                    // An oversized header: breaks the connection.
                    d.send(XsdSockmsgType::Read as u32, u32::from(b), &vec![0u8; XENSTORE_PAYLOAD_MAX + 1]);
                }
            }
            // Pending bytes, as the ring allows.
            _ => {
                if a == 0xff {
                    // A producer index far ahead: breaks the connection if
                    // the client looks before the daemon's next write puts
                    // it back.
                    let prod = d.rsp_prod.load(Ordering::Relaxed);
                    let bad = prod.wrapping_add(XENSTORE_RING_SIZE as u32 + 1 + u32::from(b));
                    d.rsp_prod.store(bad, Ordering::Release);
                    d.broke = true;
                } else {
                    d.flush();
                }
            }
        }
    }
    drop(watches);
    drop(calls);
}

fuzz_target!(|data: &[u8]| {
    WORLD.with(|cell| {
        let mut cell = cell.borrow_mut();
        let w = cell.get_or_insert_with(|| {
            let sim = SimXen::new(SimConfig::new(0).quiet());
            let dom = sim.create_domain(DomainConfig::new("fuzz"));
            let guest = sim.guest(dom.id());
            World { _sim: sim, guest }
        });
        run(w, data);
    });
});
