//! Byte rings in shared memory: the producer and consumer halves of the
//! xenstore page's `req`/`rsp` rings (and of any ring of the same shape),
//! and the reassembly of whole messages from the reply ring.
//!
//! A ring is a power-of-two byte array and two free-running `u32` indices:
//! the producer owns `prod`, the consumer owns `cons`, and
//! `prod - cons` (wrapping) is the number of bytes in flight, never more than
//! the ring's size. Each side keeps its own index privately and only *reads*
//! the other side's from shared memory, so a peer that scribbles on our index
//! cannot make us misbehave; a peer index that breaks `prod - cons <= size`
//! is reported as [`ProtocolError::RingIndex`] and the caller treats the
//! connection as broken.
//!
//! # Ordering
//!
//! - Producer: read the peer's `cons` (Acquire: the peer's reads of the
//!   slots we are about to overwrite happened before), copy the bytes in,
//!   then publish `prod` (Release: the bytes are visible before the index).
//! - Consumer: read the peer's `prod` (Acquire: the bytes it covers are
//!   visible to the reads that follow), copy the bytes out, then publish
//!   `cons` (Release: our reads are done before the peer may overwrite).
//!
//! On x86 these are plain moves plus compiler barriers, which is what Xen's
//! ring protocol needs between domains (stores are not reordered with other
//! stores, nor loads with other loads).

use core::sync::atomic::{AtomicU32, AtomicU8, Ordering};

use super::wire::ProtocolError;
use crate::abi::xs_wire::{XsdSockmsg, XENSTORE_PAYLOAD_MAX};

/// Memory a byte ring's data lives in: copies in and out at an offset.
///
/// Implemented for a slice of atomics (a `#[repr(C)]` ABI struct in place)
/// and for [`SharedMem`](crate::page::SharedMem) (a page shared with another
/// domain, accessed with volatile copies).
pub trait RingMemory {
    /// Bytes of ring data: a power of two.
    fn size(&self) -> usize;
    /// Copies `buf.len()` bytes at `offset` out (`offset + len <= size`).
    fn read_at(&self, offset: usize, buf: &mut [u8]);
    /// Copies `data` in at `offset` (`offset + len <= size`).
    fn write_at(&self, offset: usize, data: &[u8]);
}

impl RingMemory for &[AtomicU8] {
    fn size(&self) -> usize {
        self.len()
    }

    fn read_at(&self, offset: usize, buf: &mut [u8]) {
        for (b, a) in buf.iter_mut().zip(&self[offset..]) {
            *b = a.load(Ordering::Relaxed);
        }
    }

    fn write_at(&self, offset: usize, data: &[u8]) {
        for (&b, a) in data.iter().zip(&self[offset..]) {
            a.store(b, Ordering::Relaxed);
        }
    }
}

/// One direction of a shared byte ring, as seen from one side: the data and
/// the two free-running indices.
#[derive(Clone, Copy, Debug)]
pub struct ByteRing<'a, M> {
    data: M,
    cons: &'a AtomicU32,
    prod: &'a AtomicU32,
}

impl<'a, M: RingMemory> ByteRing<'a, M> {
    /// A ring over `data` with its two indices.
    ///
    /// # Panics
    /// If `data`'s size is not a power of two (a programming error: the
    /// rings of Xen's headers all are).
    pub fn new(data: M, cons: &'a AtomicU32, prod: &'a AtomicU32) -> Self {
        assert!(data.size().is_power_of_two() && data.size() <= 1 << 30);
        ByteRing { data, cons, prod }
    }

    /// The ring's size in bytes.
    pub fn size(&self) -> usize {
        self.data.size()
    }

    fn check(&self, prod: u32, cons: u32) -> Result<usize, ProtocolError> {
        let used = prod.wrapping_sub(cons) as usize;
        if used > self.size() {
            return Err(ProtocolError::RingIndex { prod, cons });
        }
        Ok(used)
    }

    fn mask(&self, idx: u32) -> usize {
        (idx as usize) & (self.size() - 1)
    }

    /// Copies `data` in starting at free-running index `idx`, wrapping.
    fn copy_in(&self, idx: u32, data: &[u8]) {
        let start = self.mask(idx);
        let first = data.len().min(self.size() - start);
        self.data.write_at(start, &data[..first]);
        self.data.write_at(0, &data[first..]);
    }

    /// Copies `buf.len()` bytes out starting at index `idx`, wrapping.
    fn copy_out(&self, idx: u32, buf: &mut [u8]) {
        let start = self.mask(idx);
        let first = buf.len().min(self.size() - start);
        let (a, b) = buf.split_at_mut(first);
        self.data.read_at(start, a);
        self.data.read_at(0, b);
    }
}

/// The producing side of a [`ByteRing`]: it owns `prod`.
#[derive(Debug)]
pub struct Producer {
    prod: u32,
}

impl Producer {
    /// Takes over the producer index as it stands in shared memory (zero on
    /// a fresh ring).
    ///
    /// # Errors
    /// [`ProtocolError::RingIndex`] if the indices are already inconsistent.
    pub fn attach<M: RingMemory>(ring: &ByteRing<'_, M>) -> Result<Producer, ProtocolError> {
        let prod = ring.prod.load(Ordering::Relaxed);
        let cons = ring.cons.load(Ordering::Acquire);
        ring.check(prod, cons)?;
        Ok(Producer { prod })
    }

    /// Free space in the ring now.
    ///
    /// # Errors
    /// [`ProtocolError::RingIndex`] if the peer's `cons` is out of range.
    pub fn space<M: RingMemory>(&self, ring: &ByteRing<'_, M>) -> Result<usize, ProtocolError> {
        // Acquire: the peer finished reading the bytes before `cons` moved.
        let cons = ring.cons.load(Ordering::Acquire);
        Ok(ring.size() - ring.check(self.prod, cons)?)
    }

    /// Copies as much of `bytes` as fits into the ring and publishes it.
    /// Returns how many bytes were written (0 when the ring is full).
    ///
    /// # Errors
    /// [`ProtocolError::RingIndex`] if the peer's `cons` is out of range;
    /// nothing is written then.
    pub fn write<M: RingMemory>(
        &mut self,
        ring: &ByteRing<'_, M>,
        bytes: &[u8],
    ) -> Result<usize, ProtocolError> {
        let n = self.space(ring)?.min(bytes.len());
        if n > 0 {
            ring.copy_in(self.prod, &bytes[..n]);
            self.prod = self.prod.wrapping_add(n as u32);
            // Release: the bytes above are visible before the new index.
            ring.prod.store(self.prod, Ordering::Release);
        }
        Ok(n)
    }
}

/// The consuming side of a [`ByteRing`]: it owns `cons`.
#[derive(Debug)]
pub struct Consumer {
    cons: u32,
}

impl Consumer {
    /// Takes over the consumer index as it stands in shared memory.
    ///
    /// # Errors
    /// [`ProtocolError::RingIndex`] if the indices are already inconsistent.
    pub fn attach<M: RingMemory>(ring: &ByteRing<'_, M>) -> Result<Consumer, ProtocolError> {
        let cons = ring.cons.load(Ordering::Relaxed);
        let prod = ring.prod.load(Ordering::Acquire);
        ring.check(prod, cons)?;
        Ok(Consumer { cons })
    }

    /// Bytes waiting in the ring now.
    ///
    /// # Errors
    /// [`ProtocolError::RingIndex`] if the peer's `prod` is out of range.
    pub fn available<M: RingMemory>(&self, ring: &ByteRing<'_, M>) -> Result<usize, ProtocolError> {
        // Acquire: the bytes up to `prod` are visible to the reads after it.
        let prod = ring.prod.load(Ordering::Acquire);
        ring.check(prod, self.cons)
    }

    /// Copies up to `buf.len()` bytes out of the ring and releases their
    /// space. Returns how many were read (0 when the ring is empty).
    ///
    /// # Errors
    /// [`ProtocolError::RingIndex`] if the peer's `prod` is out of range;
    /// nothing is read then.
    pub fn read<M: RingMemory>(
        &mut self,
        ring: &ByteRing<'_, M>,
        buf: &mut [u8],
    ) -> Result<usize, ProtocolError> {
        let n = self.available(ring)?.min(buf.len());
        if n > 0 {
            ring.copy_out(self.cons, &mut buf[..n]);
            self.cons = self.cons.wrapping_add(n as u32);
            // Release: our reads above are done before the peer may reuse the space.
            ring.cons.store(self.cons, Ordering::Release);
        }
        Ok(n)
    }
}

/// Size of the reassembly buffer: one header and the largest payload.
pub const MESSAGE_MAX: usize = XsdSockmsg::SIZE + XENSTORE_PAYLOAD_MAX;

/// Reassembles whole messages from a byte ring into a fixed buffer.
///
/// A message may be larger than the ring (a 4 KiB payload through a 1 KiB
/// ring), so it is read in pieces across notifications. The header's length
/// is checked as soon as its 16 bytes are in, so an oversized message is
/// refused before any of its payload is read. The type is not checked here:
/// a message of unknown type can still be skipped, since its length is
/// known; the layer above decides what to do with it.
#[derive(Debug)]
pub struct MessageReader {
    buf: alloc::boxed::Box<[u8; MESSAGE_MAX]>,
    filled: usize,
    header: Option<XsdSockmsg>,
    /// A complete message was returned; drop it before reading more.
    complete: bool,
}

impl Default for MessageReader {
    fn default() -> Self {
        Self::new()
    }
}

impl MessageReader {
    /// An empty reader.
    pub fn new() -> Self {
        MessageReader {
            buf: alloc::boxed::Box::new([0; MESSAGE_MAX]),
            filled: 0,
            header: None,
            complete: false,
        }
    }

    /// Whether part of a message has been read.
    pub fn is_partial(&self) -> bool {
        self.filled > 0 && !self.complete
    }

    /// Reads from the ring until one whole message is in the buffer, then
    /// returns it; `Ok(None)` when the ring ran dry first (call again after
    /// the next notification). The returned message stays valid until the
    /// next call. `*consumed` is set to true if any byte was taken from the
    /// ring (the peer may be waiting for space: notify it).
    ///
    /// # Errors
    /// [`ProtocolError::RingIndex`] from the ring indices, or
    /// [`ProtocolError::PayloadTooLong`] from the header. The stream cannot
    /// be resynchronised after that: the connection is broken.
    pub fn poll_message<M: RingMemory>(
        &mut self,
        consumer: &mut Consumer,
        ring: &ByteRing<'_, M>,
        consumed: &mut bool,
    ) -> Result<Option<(XsdSockmsg, &[u8])>, ProtocolError> {
        if self.complete {
            self.filled = 0;
            self.header = None;
            self.complete = false;
        }
        loop {
            let want = match self.header {
                None => XsdSockmsg::SIZE,
                Some(h) => XsdSockmsg::SIZE + h.len as usize,
            };
            if self.filled < want {
                let n = consumer.read(ring, &mut self.buf[self.filled..want])?;
                *consumed |= n > 0;
                self.filled += n;
                if self.filled < want {
                    return Ok(None);
                }
            }
            match self.header {
                None => {
                    let mut raw = [0u8; XsdSockmsg::SIZE];
                    raw.copy_from_slice(&self.buf[..XsdSockmsg::SIZE]);
                    let h = XsdSockmsg::from_bytes(&raw);
                    if h.len as usize > XENSTORE_PAYLOAD_MAX {
                        return Err(ProtocolError::PayloadTooLong(h.len));
                    }
                    self.header = Some(h);
                }
                Some(h) => {
                    self.complete = true;
                    return Ok(Some((h, &self.buf[XsdSockmsg::SIZE..want])));
                }
            }
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::abi::xs_wire::XsdSockmsgType;
    use crate::xenstore::wire::decode_header;

    struct Shared {
        data: [AtomicU8; 16],
        cons: AtomicU32,
        prod: AtomicU32,
    }

    fn shared(start: u32) -> Shared {
        Shared {
            data: core::array::from_fn(|_| AtomicU8::new(0)),
            cons: AtomicU32::new(start),
            prod: AtomicU32::new(start),
        }
    }

    #[test]
    fn write_then_read_wraps_around() {
        // Start near u32::MAX so both the offset and the index wrap.
        let s = shared(u32::MAX - 5);
        let ring = ByteRing::new(&s.data[..], &s.cons, &s.prod);
        let mut p = Producer::attach(&ring).unwrap();
        let mut c = Consumer::attach(&ring).unwrap();
        let mut expected = alloc::vec::Vec::new();
        let mut got = alloc::vec::Vec::new();
        for round in 0u8..10 {
            let bytes: alloc::vec::Vec<u8> = (0..11).map(|i| round * 16 + i).collect();
            assert_eq!(p.write(&ring, &bytes).unwrap(), 11);
            expected.extend_from_slice(&bytes);
            let mut buf = [0u8; 11];
            assert_eq!(c.read(&ring, &mut buf).unwrap(), 11);
            got.extend_from_slice(&buf);
        }
        assert_eq!(got, expected);
        assert_eq!(
            s.prod.load(Ordering::Relaxed),
            (u32::MAX - 5).wrapping_add(110)
        );
    }

    #[test]
    fn full_ring_takes_only_what_fits() {
        let s = shared(0);
        let ring = ByteRing::new(&s.data[..], &s.cons, &s.prod);
        let mut p = Producer::attach(&ring).unwrap();
        assert_eq!(p.write(&ring, &[1; 20]).unwrap(), 16);
        assert_eq!(p.write(&ring, &[1; 20]).unwrap(), 0);
        let mut c = Consumer::attach(&ring).unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(c.read(&ring, &mut buf).unwrap(), 4);
        assert_eq!(p.space(&ring).unwrap(), 4);
        assert_eq!(p.write(&ring, &[2; 20]).unwrap(), 4);
    }

    #[test]
    fn producer_index_too_far_ahead_is_an_error() {
        let s = shared(0);
        let ring = ByteRing::new(&s.data[..], &s.cons, &s.prod);
        let mut c = Consumer::attach(&ring).unwrap();
        s.prod.store(17, Ordering::Relaxed);
        let mut buf = [0u8; 4];
        assert_eq!(
            c.read(&ring, &mut buf),
            Err(ProtocolError::RingIndex { prod: 17, cons: 0 })
        );
        // Behind the consumer (a backwards jump) is just as bad.
        s.prod.store(u32::MAX, Ordering::Relaxed);
        assert!(c.read(&ring, &mut buf).is_err());
        s.prod.store(16, Ordering::Relaxed);
        assert_eq!(c.read(&ring, &mut buf), Ok(4));
    }

    #[test]
    fn consumer_index_out_of_range_is_an_error() {
        let s = shared(0);
        let ring = ByteRing::new(&s.data[..], &s.cons, &s.prod);
        let mut p = Producer::attach(&ring).unwrap();
        p.write(&ring, &[0; 3]).unwrap();
        s.cons.store(5, Ordering::Relaxed); // consumed more than produced
        assert_eq!(
            p.write(&ring, &[0; 1]),
            Err(ProtocolError::RingIndex { prod: 3, cons: 5 })
        );
        // Our private index is kept: the peer scribbling on `prod` does not move it.
        s.cons.store(3, Ordering::Relaxed);
        s.prod.store(1000, Ordering::Relaxed);
        assert_eq!(p.write(&ring, &[0; 1]), Ok(1));
        assert_eq!(s.prod.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn attach_rejects_inconsistent_indices() {
        let s = shared(0);
        s.prod.store(100, Ordering::Relaxed);
        let ring = ByteRing::new(&s.data[..], &s.cons, &s.prod);
        assert!(Producer::attach(&ring).is_err());
        assert!(Consumer::attach(&ring).is_err());
    }

    fn msg(kind: XsdSockmsgType, req_id: u32, payload: &[u8]) -> alloc::vec::Vec<u8> {
        let h = XsdSockmsg {
            type_: kind as u32,
            req_id,
            tx_id: 0,
            len: payload.len() as u32,
        };
        let mut v = alloc::vec::Vec::from(h.to_bytes());
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn reader_reassembles_messages_larger_than_the_ring() {
        let s = shared(0);
        let ring = ByteRing::new(&s.data[..], &s.cons, &s.prod);
        let mut p = Producer::attach(&ring).unwrap();
        let mut c = Consumer::attach(&ring).unwrap();
        let mut r = MessageReader::new();
        let mut stream = msg(XsdSockmsgType::Read, 1, b"a value longer than the ring");
        stream.extend(msg(XsdSockmsgType::Write, 2, b"OK\0"));
        let mut sent = 0;
        let mut got = alloc::vec::Vec::new();
        while got.len() < 2 {
            sent += p.write(&ring, &stream[sent..]).unwrap();
            let mut consumed = false;
            while let Some((h, payload)) = r.poll_message(&mut c, &ring, &mut consumed).unwrap() {
                let h = decode_header(h).unwrap();
                got.push((h.req_id, alloc::vec::Vec::from(payload)));
            }
            assert!(consumed);
        }
        assert_eq!(
            got[0],
            (
                1,
                alloc::vec::Vec::from(&b"a value longer than the ring"[..])
            )
        );
        assert_eq!(got[1], (2, alloc::vec::Vec::from(&b"OK\0"[..])));
    }

    #[test]
    fn reader_rejects_oversized_header_before_payload() {
        let s = shared(0);
        let ring = ByteRing::new(&s.data[..], &s.cons, &s.prod);
        let mut p = Producer::attach(&ring).unwrap();
        let mut c = Consumer::attach(&ring).unwrap();
        let h = XsdSockmsg {
            type_: 2,
            req_id: 1,
            tx_id: 0,
            len: 5000,
        };
        p.write(&ring, &h.to_bytes()).unwrap();
        let mut r = MessageReader::new();
        let mut consumed = false;
        assert_eq!(
            r.poll_message(&mut c, &ring, &mut consumed),
            Err(ProtocolError::PayloadTooLong(5000))
        );
    }

    proptest::proptest! {
        /// Both ends against a byte-queue model: any interleaving of writes
        /// and reads of any size, starting anywhere (so indices and offsets
        /// wrap), moves exactly the bytes the model moves, and each call
        /// takes exactly what fits.
        #[test]
        fn ends_match_a_queue_model(
            start in proptest::prelude::any::<u32>(),
            ops in proptest::collection::vec((proptest::prelude::any::<bool>(), 0usize..40), 1..200),
        ) {
            let s = shared(start);
            let ring = ByteRing::new(&s.data[..], &s.cons, &s.prod);
            let mut p = Producer::attach(&ring).unwrap();
            let mut c = Consumer::attach(&ring).unwrap();
            let mut model = alloc::collections::VecDeque::new();
            let mut next = 0u8;
            for (write, n) in ops {
                if write {
                    let bytes: alloc::vec::Vec<u8> = (0..n).map(|_| { next = next.wrapping_add(1); next }).collect();
                    let fits = (16 - model.len()).min(n);
                    proptest::prop_assert_eq!(p.write(&ring, &bytes).unwrap(), fits);
                    model.extend(&bytes[..fits]);
                    next = next.wrapping_sub((n - fits) as u8);
                } else {
                    let mut buf = [0u8; 40];
                    let got = c.read(&ring, &mut buf[..n]).unwrap();
                    proptest::prop_assert_eq!(got, model.len().min(n));
                    let want: alloc::vec::Vec<u8> = model.drain(..got).collect();
                    proptest::prop_assert_eq!(&buf[..got], &want[..]);
                }
                proptest::prop_assert_eq!(p.space(&ring).unwrap(), 16 - model.len());
                proptest::prop_assert_eq!(c.available(&ring).unwrap(), model.len());
            }
        }

        /// Whatever the peer leaves in the ring and its indices, the reader
        /// returns messages no longer than the bound, or an error; it never
        /// panics.
        #[test]
        fn reader_survives_garbage(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            prod_jump in proptest::prelude::any::<u32>(),
        ) {
            let s = shared(0);
            let ring = ByteRing::new(&s.data[..], &s.cons, &s.prod);
            let mut p = Producer::attach(&ring).unwrap();
            let mut c = Consumer::attach(&ring).unwrap();
            let mut r = MessageReader::new();
            let mut sent = 0;
            for round in 0..40 {
                sent += p.write(&ring, &bytes[sent..]).unwrap();
                if round == 20 {
                    s.prod.store(prod_jump, Ordering::Relaxed);
                }
                let mut consumed = false;
                match r.poll_message(&mut c, &ring, &mut consumed) {
                    Ok(Some((h, payload))) => {
                        proptest::prop_assert!(payload.len() <= XENSTORE_PAYLOAD_MAX);
                        proptest::prop_assert_eq!(payload.len(), h.len as usize);
                    }
                    Ok(None) => {}
                    Err(_) => break,
                }
            }
        }
    }
}
