//! The sim's xenstore daemon: a pure state machine that takes one
//! `xsd_sockmsg` from a domain and returns the replies and watch events to
//! deliver.
//!
//! It keeps what a real xenstored keeps and enforces what it enforces:
//!
//! - a tree of nodes, each with a value and a permission list (the first
//!   entry names the owner and the access of every domain not listed); dom0
//!   may do anything, a domain owns what it creates, and reads, writes,
//!   creations, removals and permission changes are checked (`EACCES`);
//! - `/local/domain/<id>` per domain, owned by it, with `domid`, `name`,
//!   `control/shutdown`, `data` and `device`;
//! - watches, which fire on a change of the watched node or anything below it,
//!   on the removal of a node above it, once up front when registered (as
//!   real xenstored does), and for `@introduceDomain` / `@releaseDomain`;
//!   a watcher sees an event only if it may read the node;
//! - transactions: each works on a snapshot; at commit, if any node it read
//!   or wrote (or looked for and did not find) changed since, the commit
//!   fails with `EAGAIN` and nothing is applied;
//! - quotas: nodes owned per domain and transactions open per domain
//!   (`EQUOTA`), value size (`E2BIG`), watches per domain (`EQUOTA`);
//! - a malformed request gets `EINVAL`; an unknown type too; a privileged
//!   operation from a domU gets `EACCES`.
//!
//! Replies echo the request's `req_id` and `tx_id`; watch events carry 0 in
//! both. The ring serving (copying these messages through each domain's
//! xenstore page) and fault injection live with the sim's backends; see
//! [`XenstoreRingServer`].

use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU8, Ordering};

use super::faults::FaultSite;
use crate::abi::xs_wire::{
    XenstoreDomainInterface, XsdSockmsg, XsdSockmsgType, XENSTORE_ABS_PATH_MAX,
    XENSTORE_ERROR_PROTO, XENSTORE_ERROR_RINGIDX, XENSTORE_PAYLOAD_MAX, XENSTORE_REL_PATH_MAX,
};
use crate::hypervisor::DomId;
use crate::xenstore::ring::{ByteRing, Consumer, MessageReader, Producer};
use crate::xenstore::wire::{
    parse_decimal, push_decimal, Access, Permission, ProtocolError, Strings, XenstoreError,
    PERMISSIONS_MAX,
};

/// The daemon's bounds. `Default` gives values close to cxenstored's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Nodes a domain other than dom0 may own.
    pub nodes_per_domain_max: usize,
    /// Longest value, in bytes.
    pub value_len_max: usize,
    /// Watches a domain may hold.
    pub watches_per_domain_max: usize,
    /// Transactions a domain may have open.
    pub transactions_per_domain_max: usize,
}

/// Paths one transaction may read or write, and mutations it may record,
/// each at most (a guest's transaction otherwise grows without bound); past
/// it an operation in the transaction answers `EQUOTA`. cxenstored's
/// per-transaction node quota is of the same size.
pub const TRANSACTION_ENTRIES_MAX: usize = 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            nodes_per_domain_max: 1000,
            value_len_max: 2048,
            watches_per_domain_max: 128,
            transactions_per_domain_max: 10,
        }
    }
}

/// A message to deliver to a domain: header and payload, ready for its ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The domain whose ring gets it.
    pub to: DomId,
    /// The whole message.
    pub msg: Vec<u8>,
}

/// One node of the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Node {
    value: Vec<u8>,
    perms: Vec<Permission>,
    /// The daemon's change counter when this node (its value, permissions
    /// or children) last changed.
    generation: u64,
}

/// A change that may fire watches.
#[derive(Clone, Debug)]
struct Change {
    path: String,
    /// A removal: watches below `path` fire too.
    recursive: bool,
    /// The node's permissions at the change (who may see the event).
    perms: Vec<Permission>,
}

/// A mutation recorded by a transaction, replayed on the live tree at commit.
#[derive(Clone, Debug)]
enum Op {
    Write(String, Vec<u8>),
    Mkdir(String),
    Rm(String),
    SetPerms(String, Vec<Permission>),
}

#[derive(Clone, Debug)]
struct Transaction {
    snapshot: BTreeMap<String, Node>,
    /// Nodes looked at: their generation when first touched (`None`: absent).
    accessed: BTreeMap<String, Option<u64>>,
    ops: Vec<Op>,
    /// The snapshot's own change counter (values never reach the live tree).
    generation: u64,
}

#[derive(Clone, Debug)]
struct Watch {
    /// The path as the domain gave it (relative or absolute or `@...`).
    given: String,
    /// The absolute path (or the special `@...` name).
    abs: String,
    token: String,
}

#[derive(Clone, Debug, Default)]
struct DomainState {
    watches: Vec<Watch>,
    transactions: BTreeMap<u32, Transaction>,
}

/// Special watch paths.
const INTRODUCE_DOMAIN: &str = "@introduceDomain";
const RELEASE_DOMAIN: &str = "@releaseDomain";

/// The xenstore daemon's state.
#[derive(Debug)]
pub struct XenstoredState {
    nodes: BTreeMap<String, Node>,
    generation: u64,
    domains: BTreeMap<u16, DomainState>,
    next_tx_id: u32,
    limits: Limits,
    outbox: VecDeque<Delivery>,
}

impl Default for XenstoredState {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

/// The node store a request operates on: the live tree, or a transaction's
/// snapshot (which then records what it touches).
struct View<'a> {
    nodes: &'a mut BTreeMap<String, Node>,
    generation: &'a mut u64,
    accessed: Option<&'a mut BTreeMap<String, Option<u64>>>,
    changes: Vec<Change>,
    limits: Limits,
}

fn is_privileged(dom: DomId) -> bool {
    dom == DomId::DOM0
}

/// The access `dom` has under `perms` (owner: everything).
fn access_of(dom: DomId, perms: &[Permission]) -> Access {
    if is_privileged(dom) {
        return Access::Both;
    }
    let Some(first) = perms.first() else {
        return Access::None;
    };
    if first.domid == dom {
        return Access::Both;
    }
    perms[1..]
        .iter()
        .find(|p| p.domid == dom)
        .map_or(first.access, |p| p.access)
}

fn parent_of(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

/// Whether `child` is `parent` or below it.
fn is_at_or_below(child: &str, parent: &str) -> bool {
    if parent == "/" {
        return child.starts_with('/');
    }
    child == parent
        || (child.starts_with(parent) && child.as_bytes().get(parent.len()) == Some(&b'/'))
}

fn home_of(dom: DomId) -> String {
    format!("/local/domain/{}", dom.0)
}

impl View<'_> {
    fn touch(&mut self, path: &str) {
        if let Some(acc) = self.accessed.as_deref_mut() {
            if !acc.contains_key(path) {
                acc.insert(path.to_string(), self.nodes.get(path).map(|n| n.generation));
            }
        }
    }

    fn get(&mut self, path: &str) -> Option<&Node> {
        self.touch(path);
        self.nodes.get(path)
    }

    fn bump(&mut self) -> u64 {
        *self.generation += 1;
        *self.generation
    }

    fn check_read(&mut self, dom: DomId, path: &str) -> Result<(), XenstoreError> {
        let node = self.get(path).ok_or(XenstoreError::NoEnt)?;
        if access_of(dom, &node.perms).can_read() {
            Ok(())
        } else {
            Err(XenstoreError::Acces)
        }
    }

    fn owned_by(&self, dom: DomId) -> usize {
        self.nodes
            .values()
            .filter(|n| n.perms.first().map(|p| p.domid) == Some(dom))
            .count()
    }

    /// Creates `path` and any missing parents, checking the caller may write
    /// the nearest existing ancestor and has node quota left.
    fn create(&mut self, dom: DomId, path: &str, value: &[u8]) -> Result<(), XenstoreError> {
        // Find the nearest existing ancestor and the nodes to create.
        let mut missing = Vec::new();
        let mut cur = path;
        loop {
            if self.get(cur).is_some() {
                break;
            }
            missing.push(cur.to_string());
            cur = parent_of(cur).ok_or(XenstoreError::NoEnt)?;
        }
        let ancestor = cur.to_string();
        let parent_perms = self.nodes[&ancestor].perms.clone();
        if !access_of(dom, &parent_perms).can_write() {
            return Err(XenstoreError::Acces);
        }
        if !is_privileged(dom)
            && self.owned_by(dom) + missing.len() > self.limits.nodes_per_domain_max
        {
            return Err(XenstoreError::Quota);
        }
        // Children inherit the parent's permissions; a domain owns what it creates.
        let mut perms = parent_perms;
        if !is_privileged(dom) {
            perms[0].domid = dom;
        }
        let generation = self.bump();
        if let Some(parent) = self.nodes.get_mut(&ancestor) {
            parent.generation = generation;
        }
        for p in missing.iter().rev() {
            let v = if p == path {
                value.to_vec()
            } else {
                Vec::new()
            };
            self.nodes.insert(
                p.clone(),
                Node {
                    value: v,
                    perms: perms.clone(),
                    generation,
                },
            );
            self.changes.push(Change {
                path: p.clone(),
                recursive: false,
                perms: perms.clone(),
            });
        }
        Ok(())
    }

    fn read(&mut self, dom: DomId, path: &str) -> Result<Vec<u8>, XenstoreError> {
        self.check_read(dom, path)?;
        Ok(self.nodes[path].value.clone())
    }

    fn write(&mut self, dom: DomId, path: &str, value: &[u8]) -> Result<(), XenstoreError> {
        if value.len() > self.limits.value_len_max {
            return Err(XenstoreError::TooBig);
        }
        let Some(node) = self.get(path) else {
            return self.create(dom, path, value);
        };
        if !access_of(dom, &node.perms).can_write() {
            return Err(XenstoreError::Acces);
        }
        let generation = self.bump();
        let node = self.nodes.get_mut(path).expect("checked above");
        node.value = value.to_vec();
        node.generation = generation;
        let perms = node.perms.clone();
        self.changes.push(Change {
            path: path.to_string(),
            recursive: false,
            perms,
        });
        Ok(())
    }

    fn mkdir(&mut self, dom: DomId, path: &str) -> Result<(), XenstoreError> {
        if let Some(node) = self.get(path) {
            // Like cxenstored: an existing node is fine if it may be written.
            return if access_of(dom, &node.perms).can_write() {
                Ok(())
            } else {
                Err(XenstoreError::Acces)
            };
        }
        self.create(dom, path, b"")
    }

    fn rm(&mut self, dom: DomId, path: &str) -> Result<(), XenstoreError> {
        if path == "/" {
            return Err(XenstoreError::Inval);
        }
        let parent = parent_of(path).ok_or(XenstoreError::Inval)?.to_string();
        let Some(node) = self.get(path) else {
            // Removing a missing node whose parent exists succeeds (cxenstored).
            return match self.get(&parent) {
                Some(_) => Ok(()),
                None => Err(XenstoreError::NoEnt),
            };
        };
        let perms = node.perms.clone();
        if !access_of(dom, &perms).can_write() {
            return Err(XenstoreError::Acces);
        }
        self.touch(&parent);
        let doomed: Vec<String> = self
            .nodes
            .range(path.to_string()..)
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(path))
            .filter(|k| is_at_or_below(k, path))
            .cloned()
            .collect();
        for k in &doomed {
            self.touch(k);
            self.nodes.remove(k);
        }
        let generation = self.bump();
        if let Some(p) = self.nodes.get_mut(&parent) {
            p.generation = generation;
        }
        self.changes.push(Change {
            path: path.to_string(),
            recursive: true,
            perms,
        });
        Ok(())
    }

    fn directory(&mut self, dom: DomId, path: &str) -> Result<Vec<String>, XenstoreError> {
        self.check_read(dom, path)?;
        let prefix = if path == "/" {
            String::from("/")
        } else {
            format!("{path}/")
        };
        Ok(self
            .nodes
            .range(prefix.clone()..)
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(&prefix))
            .filter(|k| k.len() > prefix.len() && !k[prefix.len()..].contains('/'))
            .map(|k| k[prefix.len()..].to_string())
            .collect())
    }

    fn get_perms(&mut self, dom: DomId, path: &str) -> Result<Vec<Permission>, XenstoreError> {
        self.check_read(dom, path)?;
        Ok(self.nodes[path].perms.clone())
    }

    fn set_perms(
        &mut self,
        dom: DomId,
        path: &str,
        perms: &[Permission],
    ) -> Result<(), XenstoreError> {
        let node = self.get(path).ok_or(XenstoreError::NoEnt)?;
        let owner = node.perms[0].domid;
        if !is_privileged(dom) {
            // Only the owner may change permissions, and may not give the node away.
            if owner != dom {
                return Err(XenstoreError::Acces);
            }
            if perms[0].domid != dom {
                return Err(XenstoreError::Perm);
            }
        }
        let generation = self.bump();
        let node = self.nodes.get_mut(path).expect("checked above");
        node.perms = perms.to_vec();
        node.generation = generation;
        self.changes.push(Change {
            path: path.to_string(),
            recursive: false,
            perms: perms.to_vec(),
        });
        Ok(())
    }

    fn apply(&mut self, dom: DomId, op: &Op) -> Result<(), XenstoreError> {
        match op {
            Op::Write(p, v) => self.write(dom, p, v),
            Op::Mkdir(p) => self.mkdir(dom, p),
            Op::Rm(p) => self.rm(dom, p),
            Op::SetPerms(p, perms) => self.set_perms(dom, p, perms),
        }
    }
}

/// Checks a path's characters and shape and makes it absolute for `dom`.
fn canonical(dom: DomId, path: &[u8]) -> Result<String, XenstoreError> {
    let path = core::str::from_utf8(path).map_err(|_| XenstoreError::Inval)?;
    let ok_chars = path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/_@-".contains(&b));
    if path.is_empty() || !ok_chars || path.contains("//") {
        return Err(XenstoreError::Inval);
    }
    let abs = if path.starts_with('/') {
        if path.len() > XENSTORE_ABS_PATH_MAX {
            return Err(XenstoreError::Inval);
        }
        path.to_string()
    } else {
        if path.len() > XENSTORE_REL_PATH_MAX {
            return Err(XenstoreError::Inval);
        }
        format!("{}/{path}", home_of(dom))
    };
    if abs.len() > 1 && abs.ends_with('/') {
        return Err(XenstoreError::Inval);
    }
    Ok(abs)
}

/// The strings of a payload that must be exactly `n` NUL-terminated strings.
fn exact_strings(payload: &[u8], n: usize) -> Result<Vec<&[u8]>, XenstoreError> {
    let strings: Vec<&[u8]> = Strings::new(payload)
        .map_err(|_| XenstoreError::Inval)?
        .collect();
    if strings.len() != n {
        return Err(XenstoreError::Inval);
    }
    Ok(strings)
}

fn message(kind: XsdSockmsgType, req_id: u32, tx_id: u32, payload: &[u8]) -> Vec<u8> {
    let h = XsdSockmsg {
        type_: kind as u32,
        req_id,
        tx_id,
        len: payload.len() as u32,
    };
    let mut v = Vec::with_capacity(XsdSockmsg::SIZE + payload.len());
    v.extend_from_slice(&h.to_bytes());
    v.extend_from_slice(payload);
    v
}

/// A successful reply's payload.
enum Answer {
    Ok,
    Bytes(Vec<u8>),
}

impl XenstoredState {
    /// A store with `/`, `/local`, `/local/domain` and dom0's home.
    pub fn new(limits: Limits) -> Self {
        let mut s = XenstoredState {
            nodes: BTreeMap::new(),
            generation: 0,
            domains: BTreeMap::new(),
            next_tx_id: 1,
            limits,
            outbox: VecDeque::new(),
        };
        let dom0_only = || {
            alloc::vec![Permission {
                domid: DomId::DOM0,
                access: Access::None
            }]
        };
        for p in ["/", "/local", "/local/domain", "/tool", "/vm"] {
            s.nodes.insert(
                p.into(),
                Node {
                    value: Vec::new(),
                    perms: dom0_only(),
                    generation: 0,
                },
            );
        }
        s.introduce(DomId::DOM0, "Domain-0");
        s
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Introduces a domain (as the toolstack and `XS_INTRODUCE` do): creates
    /// its home `/local/domain/<id>` owned by it, with `domid`, `name`,
    /// `control/shutdown`, `data` and `device`, and fires `@introduceDomain`.
    /// Introducing a domain twice only refreshes nothing and returns.
    pub fn introduce(&mut self, dom: DomId, name: &str) {
        if self.domains.contains_key(&dom.0) {
            return;
        }
        self.domains.insert(dom.0, DomainState::default());
        let home = home_of(dom);
        let own = alloc::vec![Permission {
            domid: dom,
            access: Access::None
        }];
        let generation = {
            self.generation += 1;
            self.generation
        };
        let mut add = |path: String, value: &[u8]| {
            self.nodes.insert(
                path,
                Node {
                    value: value.to_vec(),
                    perms: own.clone(),
                    generation,
                },
            );
        };
        let mut id = Vec::new();
        push_decimal(&mut id, u64::from(dom.0));
        add(home.clone(), b"");
        add(format!("{home}/domid"), &id);
        add(format!("{home}/name"), name.as_bytes());
        add(format!("{home}/control"), b"");
        add(format!("{home}/control/shutdown"), b"");
        add(format!("{home}/data"), b"");
        add(format!("{home}/device"), b"");
        if let Some(parent) = self.nodes.get_mut("/local/domain") {
            parent.generation = generation;
        }
        self.fire_special(INTRODUCE_DOMAIN);
    }

    /// Releases a domain: removes its home, watches and transactions, and
    /// fires `@releaseDomain`.
    pub fn release(&mut self, dom: DomId) {
        if self.domains.remove(&dom.0).is_none() {
            return;
        }
        let _ = self.live_op(DomId::DOM0, |v| v.rm(DomId::DOM0, &home_of(dom)));
        self.outbox.retain(|d| d.to != dom);
        self.fire_special(RELEASE_DOMAIN);
    }

    /// Whether `dom` has been introduced.
    pub fn is_introduced(&self, dom: DomId) -> bool {
        self.domains.contains_key(&dom.0)
    }

    /// Takes the messages queued for delivery, in order.
    pub fn take_deliveries(&mut self) -> Vec<Delivery> {
        self.outbox.drain(..).collect()
    }

    /// Handles one message `from` a domain: the 16 header bytes already
    /// decoded and the payload (at most `XENSTORE_PAYLOAD_MAX` bytes; a ring
    /// server breaks the connection of a client that sends more). Returns
    /// everything to deliver: the reply first, then the watch events it
    /// caused (and any queued by the direct calls since the last take).
    pub fn handle(&mut self, from: DomId, header: XsdSockmsg, payload: &[u8]) -> Vec<Delivery> {
        let reply = match self.dispatch(from, header, payload) {
            Ok(Answer::Ok) => message(
                XsdSockmsgType::try_from(header.type_).expect("dispatched"),
                header.req_id,
                header.tx_id,
                b"OK\0",
            ),
            Ok(Answer::Bytes(b)) => message(
                XsdSockmsgType::try_from(header.type_).expect("dispatched"),
                header.req_id,
                header.tx_id,
                &b,
            ),
            Err(e) => {
                let mut p = Vec::from(e.name().as_bytes());
                p.push(0);
                message(XsdSockmsgType::Error, header.req_id, header.tx_id, &p)
            }
        };
        // The reply goes before the events its request caused (as in
        // cxenstored, where the initial watch event follows the ack).
        self.outbox.push_front(Delivery {
            to: from,
            msg: reply,
        });
        self.take_deliveries()
    }

    fn dispatch(
        &mut self,
        from: DomId,
        h: XsdSockmsg,
        payload: &[u8],
    ) -> Result<Answer, XenstoreError> {
        if !self.domains.contains_key(&from.0) {
            return Err(XenstoreError::Inval);
        }
        if payload.len() != h.len as usize || payload.len() > XENSTORE_PAYLOAD_MAX {
            return Err(XenstoreError::Inval);
        }
        let kind = XsdSockmsgType::try_from(h.type_).map_err(|_| XenstoreError::Inval)?;
        let tx = h.tx_id;
        match kind {
            XsdSockmsgType::Read => {
                let path = self.path_arg(from, payload)?;
                self.op(from, tx, |v| v.read(from, &path))
                    .map(Answer::Bytes)
            }
            XsdSockmsgType::Directory => {
                let path = self.path_arg(from, payload)?;
                let names = self.op(from, tx, |v| v.directory(from, &path))?;
                let mut out = Vec::new();
                for n in names {
                    out.extend_from_slice(n.as_bytes());
                    out.push(0);
                }
                Ok(Answer::Bytes(out))
            }
            XsdSockmsgType::GetPerms => {
                let path = self.path_arg(from, payload)?;
                let perms = self.op(from, tx, |v| v.get_perms(from, &path))?;
                let mut out = Vec::new();
                for p in perms {
                    p.emit(&mut out);
                    out.push(0);
                }
                Ok(Answer::Bytes(out))
            }
            XsdSockmsgType::Write => {
                let nul = payload
                    .iter()
                    .position(|&b| b == 0)
                    .ok_or(XenstoreError::Inval)?;
                let path = canonical(from, &payload[..nul])?;
                let value = payload[nul + 1..].to_vec();
                self.mutate(from, tx, Op::Write(path, value))
            }
            XsdSockmsgType::Mkdir => {
                let path = self.path_arg(from, payload)?;
                self.mutate(from, tx, Op::Mkdir(path))
            }
            XsdSockmsgType::Rm => {
                let path = self.path_arg(from, payload)?;
                self.mutate(from, tx, Op::Rm(path))
            }
            XsdSockmsgType::SetPerms => {
                let strings: Vec<&[u8]> = Strings::new(payload)
                    .map_err(|_| XenstoreError::Inval)?
                    .collect();
                let (path, perms) = strings.split_first().ok_or(XenstoreError::Inval)?;
                let path = canonical(from, path)?;
                if perms.is_empty() || perms.len() > PERMISSIONS_MAX {
                    return Err(XenstoreError::Inval);
                }
                let perms = perms
                    .iter()
                    .map(|p| Permission::parse(p))
                    .collect::<Result<Vec<_>, ProtocolError>>()
                    .map_err(|_| XenstoreError::Inval)?;
                self.mutate(from, tx, Op::SetPerms(path, perms))
            }
            XsdSockmsgType::Watch => self.watch(from, payload).map(|()| Answer::Ok),
            XsdSockmsgType::Unwatch => self.unwatch(from, payload).map(|()| Answer::Ok),
            XsdSockmsgType::TransactionStart => {
                if tx != 0 {
                    return Err(XenstoreError::Busy);
                }
                if payload != b"\0" {
                    return Err(XenstoreError::Inval);
                }
                self.transaction_start(from).map(|id| {
                    let mut out = Vec::new();
                    push_decimal(&mut out, u64::from(id));
                    out.push(0);
                    Answer::Bytes(out)
                })
            }
            XsdSockmsgType::TransactionEnd => {
                let commit = match payload {
                    b"T\0" => true,
                    b"F\0" => false,
                    _ => return Err(XenstoreError::Inval),
                };
                self.transaction_end(from, tx, commit).map(|()| Answer::Ok)
            }
            XsdSockmsgType::GetDomainPath => {
                let arg = exact_strings(payload, 1)?;
                let id = parse_decimal(arg[0])
                    .and_then(|v| u16::try_from(v).ok())
                    .ok_or(XenstoreError::Inval)?;
                let mut out = Vec::from(home_of(DomId(id)).as_bytes());
                out.push(0);
                Ok(Answer::Bytes(out))
            }
            XsdSockmsgType::Introduce
            | XsdSockmsgType::Release
            | XsdSockmsgType::Resume
            | XsdSockmsgType::SetTarget
            | XsdSockmsgType::IsDomainIntroduced
            | XsdSockmsgType::Control
            | XsdSockmsgType::ResetWatches
            | XsdSockmsgType::DirectoryPart => {
                if is_privileged(from) {
                    Err(XenstoreError::NoSys)
                } else {
                    Err(XenstoreError::Acces)
                }
            }
            // Messages only a daemon sends.
            XsdSockmsgType::WatchEvent | XsdSockmsgType::Error => Err(XenstoreError::Inval),
        }
    }

    fn path_arg(&self, from: DomId, payload: &[u8]) -> Result<String, XenstoreError> {
        canonical(from, exact_strings(payload, 1)?[0])
    }

    /// Runs a read-only operation in the live tree or in transaction `tx`.
    fn op<T>(
        &mut self,
        from: DomId,
        tx: u32,
        f: impl FnOnce(&mut View<'_>) -> Result<T, XenstoreError>,
    ) -> Result<T, XenstoreError> {
        if tx == 0 {
            return self.live_op(from, f);
        }
        let limits = self.limits;
        let t = self
            .domains
            .get_mut(&from.0)
            .and_then(|d| d.transactions.get_mut(&tx))
            .ok_or(XenstoreError::NoEnt)?;
        if t.accessed.len() >= TRANSACTION_ENTRIES_MAX || t.ops.len() >= TRANSACTION_ENTRIES_MAX {
            return Err(XenstoreError::Quota);
        }
        let mut view = View {
            nodes: &mut t.snapshot,
            generation: &mut t.generation,
            accessed: Some(&mut t.accessed),
            changes: Vec::new(),
            limits,
        };
        f(&mut view)
    }

    /// Runs an operation on the live tree and fires the watches it triggers.
    fn live_op<T>(
        &mut self,
        _from: DomId,
        f: impl FnOnce(&mut View<'_>) -> Result<T, XenstoreError>,
    ) -> Result<T, XenstoreError> {
        let mut view = View {
            nodes: &mut self.nodes,
            generation: &mut self.generation,
            accessed: None,
            changes: Vec::new(),
            limits: self.limits,
        };
        let r = f(&mut view);
        let changes = core::mem::take(&mut view.changes);
        for c in &changes {
            self.fire(c);
        }
        r
    }

    /// A mutation, applied live or recorded in transaction `tx`.
    fn mutate(&mut self, from: DomId, tx: u32, op: Op) -> Result<Answer, XenstoreError> {
        if tx == 0 {
            return self
                .live_op(from, |v| v.apply(from, &op))
                .map(|()| Answer::Ok);
        }
        self.op(from, tx, |v| v.apply(from, &op))?;
        let t = self
            .domains
            .get_mut(&from.0)
            .and_then(|d| d.transactions.get_mut(&tx))
            .expect("op found it");
        t.ops.push(op);
        Ok(Answer::Ok)
    }

    fn watch(&mut self, from: DomId, payload: &[u8]) -> Result<(), XenstoreError> {
        let args = exact_strings(payload, 2)?;
        let (given, token) = (args[0], args[1]);
        let given = core::str::from_utf8(given).map_err(|_| XenstoreError::Inval)?;
        let token = core::str::from_utf8(token).map_err(|_| XenstoreError::Inval)?;
        if token.is_empty() {
            return Err(XenstoreError::Inval);
        }
        let abs = if given.starts_with('@') {
            if given != INTRODUCE_DOMAIN && given != RELEASE_DOMAIN {
                return Err(XenstoreError::Inval);
            }
            given.to_string()
        } else {
            canonical(from, given.as_bytes())?
        };
        let limit = self.limits.watches_per_domain_max;
        let d = self.domains.get_mut(&from.0).ok_or(XenstoreError::Inval)?;
        if d.watches
            .iter()
            .any(|w| w.given == given && w.token == token)
        {
            return Err(XenstoreError::Exist);
        }
        if d.watches.len() >= limit {
            return Err(XenstoreError::Quota);
        }
        d.watches.push(Watch {
            given: given.to_string(),
            abs,
            token: token.to_string(),
        });
        // Real xenstored fires every new watch once, up front.
        self.outbox.push_back(Delivery {
            to: from,
            msg: watch_event(given, token),
        });
        Ok(())
    }

    fn unwatch(&mut self, from: DomId, payload: &[u8]) -> Result<(), XenstoreError> {
        let args = exact_strings(payload, 2)?;
        let d = self.domains.get_mut(&from.0).ok_or(XenstoreError::Inval)?;
        let i = d
            .watches
            .iter()
            .position(|w| w.given.as_bytes() == args[0] && w.token.as_bytes() == args[1])
            .ok_or(XenstoreError::NoEnt)?;
        d.watches.remove(i);
        Ok(())
    }

    fn transaction_start(&mut self, from: DomId) -> Result<u32, XenstoreError> {
        let limit = self.limits.transactions_per_domain_max;
        let id = self.next_tx_id;
        let snapshot = self.nodes.clone();
        let generation = self.generation;
        let d = self.domains.get_mut(&from.0).ok_or(XenstoreError::Inval)?;
        if d.transactions.len() >= limit {
            return Err(XenstoreError::Quota);
        }
        d.transactions.insert(
            id,
            Transaction {
                snapshot,
                accessed: BTreeMap::new(),
                ops: Vec::new(),
                generation,
            },
        );
        self.next_tx_id = self.next_tx_id.checked_add(1).unwrap_or(1);
        Ok(id)
    }

    fn transaction_end(&mut self, from: DomId, tx: u32, commit: bool) -> Result<(), XenstoreError> {
        let d = self.domains.get_mut(&from.0).ok_or(XenstoreError::Inval)?;
        let t = d.transactions.remove(&tx).ok_or(XenstoreError::NoEnt)?;
        if !commit {
            return Ok(());
        }
        let conflict = t
            .accessed
            .iter()
            .any(|(path, generation)| self.nodes.get(path).map(|n| n.generation) != *generation);
        if conflict {
            return Err(XenstoreError::Again);
        }
        for op in &t.ops {
            // Nothing the transaction touched changed, so each op succeeds
            // here as it did on the snapshot.
            let r = self.live_op(from, |v| v.apply(from, op));
            assert!(
                r.is_ok(),
                "replay of a conflict-free transaction failed: {r:?}"
            );
        }
        Ok(())
    }

    /// Whether `dom` has transaction `tx` open.
    pub fn has_transaction(&self, dom: DomId, tx: u32) -> bool {
        self.domains
            .get(&dom.0)
            .is_some_and(|d| d.transactions.contains_key(&tx))
    }

    /// Aborts `dom`'s transaction `tx` (as if a commit conflicted), e.g. when
    /// a fault forces a commit to fail. Returns whether it was open.
    pub fn abort_transaction(&mut self, dom: DomId, tx: u32) -> bool {
        self.domains
            .get_mut(&dom.0)
            .is_some_and(|d| d.transactions.remove(&tx).is_some())
    }

    fn fire(&mut self, c: &Change) {
        for (&id, d) in &self.domains {
            let dom = DomId(id);
            if !access_of(dom, &c.perms).can_read() {
                continue;
            }
            for w in &d.watches {
                let path = if is_at_or_below(&c.path, &w.abs) {
                    &c.path
                } else if c.recursive && is_at_or_below(&w.abs, &c.path) {
                    &w.abs
                } else {
                    continue;
                };
                let shown = if w.given.starts_with('/') {
                    path.clone()
                } else {
                    // A relative watch sees relative paths.
                    let home = home_of(dom);
                    path.strip_prefix(&home)
                        .and_then(|r| r.strip_prefix('/'))
                        .map_or_else(|| path.clone(), str::to_string)
                };
                self.outbox.push_back(Delivery {
                    to: dom,
                    msg: watch_event(&shown, &w.token),
                });
            }
        }
    }

    fn fire_special(&mut self, which: &str) {
        for (&id, d) in &self.domains {
            for w in d.watches.iter().filter(|w| w.abs == which) {
                self.outbox.push_back(Delivery {
                    to: DomId(id),
                    msg: watch_event(which, &w.token),
                });
            }
        }
    }

    // ---- Direct access, for the sim's toolstack and backends ----

    /// Reads `path` as domain `as_dom` would (permissions apply).
    ///
    /// # Errors
    /// `ENOENT`, `EACCES`, `EINVAL` (bad path).
    pub fn read_as(&mut self, as_dom: DomId, path: &str) -> Result<Vec<u8>, XenstoreError> {
        let path = canonical(as_dom, path.as_bytes())?;
        self.live_op(as_dom, |v| v.read(as_dom, &path))
    }

    /// Writes `path` as domain `as_dom` would, firing watches.
    ///
    /// # Errors
    /// `EACCES`, `E2BIG`, `EQUOTA`, `EINVAL` (bad path).
    pub fn write_as(
        &mut self,
        as_dom: DomId,
        path: &str,
        value: &[u8],
    ) -> Result<(), XenstoreError> {
        let path = canonical(as_dom, path.as_bytes())?;
        self.live_op(as_dom, |v| v.write(as_dom, &path, value))
    }

    /// Creates `path` (empty) as domain `as_dom` would.
    ///
    /// # Errors
    /// As [`write_as`](Self::write_as).
    pub fn mkdir_as(&mut self, as_dom: DomId, path: &str) -> Result<(), XenstoreError> {
        let path = canonical(as_dom, path.as_bytes())?;
        self.live_op(as_dom, |v| v.mkdir(as_dom, &path))
    }

    /// Removes `path` and everything below it as `as_dom` would.
    ///
    /// # Errors
    /// `EACCES`, `ENOENT` (parent missing too), `EINVAL`.
    pub fn rm_as(&mut self, as_dom: DomId, path: &str) -> Result<(), XenstoreError> {
        let path = canonical(as_dom, path.as_bytes())?;
        self.live_op(as_dom, |v| v.rm(as_dom, &path))
    }

    /// Lists the children of `path` as `as_dom` would.
    ///
    /// # Errors
    /// `ENOENT`, `EACCES`, `EINVAL`.
    pub fn directory_as(
        &mut self,
        as_dom: DomId,
        path: &str,
    ) -> Result<Vec<String>, XenstoreError> {
        let path = canonical(as_dom, path.as_bytes())?;
        self.live_op(as_dom, |v| v.directory(as_dom, &path))
    }

    /// Sets the permissions of `path` as `as_dom` would.
    ///
    /// # Errors
    /// `ENOENT`, `EACCES`, `EPERM`, `EINVAL` (bad path or empty list).
    pub fn set_perms_as(
        &mut self,
        as_dom: DomId,
        path: &str,
        perms: &[Permission],
    ) -> Result<(), XenstoreError> {
        if perms.is_empty() || perms.len() > PERMISSIONS_MAX {
            return Err(XenstoreError::Inval);
        }
        let path = canonical(as_dom, path.as_bytes())?;
        self.live_op(as_dom, |v| v.set_perms(as_dom, &path, perms))
    }

    /// The permissions of `path` (no check: the toolstack's view).
    pub fn perms(&self, path: &str) -> Option<Vec<Permission>> {
        self.nodes.get(path).map(|n| n.perms.clone())
    }

    /// How many nodes the tree holds.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// How many watches `dom` holds.
    pub fn watch_count(&self, dom: DomId) -> usize {
        self.domains.get(&dom.0).map_or(0, |d| d.watches.len())
    }

    /// How many transactions `dom` has open.
    pub fn transaction_count(&self, dom: DomId) -> usize {
        self.domains.get(&dom.0).map_or(0, |d| d.transactions.len())
    }
}

impl super::SimXen {
    /// Runs `f` on the store of the sim's xenstore daemon: the direct access
    /// of the toolstack and of dom0's backends ([`XenstoredState::write_as`]
    /// and friends). Watch events it causes are delivered the next time the
    /// world runs its daemons (its next poll or park).
    ///
    /// # Examples
    /// ```
    /// use ringlet_xen::hypervisor::DomId;
    /// use ringlet_xen::sim::{DomainConfig, SimConfig, SimXen};
    ///
    /// let sim = SimXen::new(SimConfig::new(1).quiet());
    /// let guest = sim.create_domain(DomainConfig::new("guest"));
    /// let home = format!("/local/domain/{}", guest.id().0);
    /// sim.xenstore(|xs| xs.write_as(DomId::DOM0, &format!("{home}/data/k"), b"v")).unwrap();
    /// assert_eq!(sim.xenstore(|xs| xs.read_as(guest.id(), "data/k")), Ok(b"v".to_vec()));
    /// ```
    pub fn xenstore<R>(&self, f: impl FnOnce(&mut XenstoredState) -> R) -> R {
        f(self.world.xenstored.borrow_mut().state_mut())
    }

    /// Runs `f` on the sim's xenstore daemon itself (its connections:
    /// [`XenstoreRingServer::broken`], [`XenstoreRingServer::events_dropped`]).
    pub fn xenstore_server<R>(&self, f: impl FnOnce(&mut XenstoreRingServer) -> R) -> R {
        f(&mut self.world.xenstored.borrow_mut())
    }
}

fn watch_event(path: &str, token: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(path.len() + token.len() + 2);
    p.extend_from_slice(path.as_bytes());
    p.push(0);
    p.extend_from_slice(token.as_bytes());
    p.push(0);
    message(XsdSockmsgType::WatchEvent, 0, 0, &p)
}

/// Messages queued for one domain at most; further watch events for it are
/// dropped (and counted), as a real daemon drops events for a client that
/// does not read them.
pub const DELIVERIES_QUEUED_MAX: usize = 256;

/// The ways a reply is corrupted under [`FaultSite::XenstoreMalformedReply`],
/// taken in turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Malformation {
    /// A copy of the reply with an id no request has goes first.
    StrayId,
    /// The reply's type is changed to another request's type.
    WrongType,
    /// The reply loses its final NUL. (A reply without one, an `XS_READ`
    /// value, is opaque: no client could tell a changed byte, so it gets a
    /// wrong type instead.)
    Unterminated,
    /// The reply becomes an `XS_ERROR` with an unknown errno name.
    GarbageErrno,
    /// The reply's header claims more than `XENSTORE_PAYLOAD_MAX`: the
    /// client cannot resynchronise and must treat the connection as broken.
    Oversized,
}

const MALFORMATIONS: [Malformation; 5] = [
    Malformation::StrayId,
    Malformation::WrongType,
    Malformation::Unterminated,
    Malformation::GarbageErrno,
    Malformation::Oversized,
];

/// One domain's connection: the daemon's ends of its xenstore ring.
#[derive(Debug)]
struct Conn {
    req: Consumer,
    rsp: Producer,
    reader: MessageReader,
    out: VecDeque<Vec<u8>>,
    /// Bytes of `out.front()` already in the ring.
    out_written: usize,
    broken: Option<ProtocolError>,
    events_dropped: u64,
}

/// The xenstore daemon serving each domain's xenstore ring page: reads
/// requests from `req`, hands them to [`XenstoredState`], and writes replies
/// and watch events into `rsp`, exactly as xenstored does over the page the
/// toolstack set up.
///
/// The sim world calls [`serve`](Self::serve) when a domain notifies its
/// xenstore port and [`flush`](Self::flush) for every domain with pending
/// output (events caused by other domains), and notifies the domain when
/// either returns `true`.
#[derive(Debug)]
pub struct XenstoreRingServer {
    state: XenstoredState,
    conns: BTreeMap<u16, Conn>,
    next_malformation: usize,
}

impl XenstoreRingServer {
    /// A server over `state` with no domain connected.
    pub fn new(state: XenstoredState) -> Self {
        XenstoreRingServer {
            state,
            conns: BTreeMap::new(),
            next_malformation: 0,
        }
    }

    /// The store.
    pub fn state(&self) -> &XenstoredState {
        &self.state
    }

    /// The store, for the toolstack's and backends' direct calls; events
    /// they cause go out with the next `serve` or `flush`.
    pub fn state_mut(&mut self) -> &mut XenstoredState {
        &mut self.state
    }

    /// Introduces `dom` (named `name`) and attaches to its ring page.
    ///
    /// # Errors
    /// [`ProtocolError::RingIndex`] if the page's indices are inconsistent.
    pub fn connect(
        &mut self,
        dom: DomId,
        name: &str,
        iface: &XenstoreDomainInterface,
    ) -> Result<(), ProtocolError> {
        let (req, rsp) = rings(iface);
        let conn = Conn {
            req: Consumer::attach(&req)?,
            rsp: Producer::attach(&rsp)?,
            reader: MessageReader::new(),
            out: VecDeque::new(),
            out_written: 0,
            broken: None,
            events_dropped: 0,
        };
        self.state.introduce(dom, name);
        self.conns.insert(dom.0, conn);
        Ok(())
    }

    /// Detaches from `dom`'s ring and releases the domain.
    pub fn disconnect(&mut self, dom: DomId) {
        self.conns.remove(&dom.0);
        self.state.release(dom);
    }

    /// Why `dom`'s connection broke, if it did (the daemon then ignores it).
    pub fn broken(&self, dom: DomId) -> Option<ProtocolError> {
        self.conns.get(&dom.0).and_then(|c| c.broken)
    }

    /// Watch events dropped for `dom` because its queue was full.
    pub fn events_dropped(&self, dom: DomId) -> u64 {
        self.conns.get(&dom.0).map_or(0, |c| c.events_dropped)
    }

    /// Whether output is waiting for `dom` (queued, or in the store's outbox).
    pub fn has_output(&self, dom: DomId) -> bool {
        self.conns.get(&dom.0).is_some_and(|c| !c.out.is_empty())
            || self.state.outbox.iter().any(|d| d.to == dom)
    }

    /// The domains with output waiting.
    pub fn domains_with_output(&self) -> Vec<DomId> {
        let mut v: Vec<DomId> = self
            .conns
            .iter()
            .filter(|(_, c)| !c.out.is_empty())
            .map(|(&d, _)| DomId(d))
            .collect();
        for d in &self.state.outbox {
            if !v.contains(&d.to) {
                v.push(d.to);
            }
        }
        v
    }

    fn route(&mut self, deliveries: Vec<Delivery>) {
        for d in deliveries {
            let Some(conn) = self.conns.get_mut(&d.to.0) else {
                continue;
            };
            let is_event = d.msg[..4] == (XsdSockmsgType::WatchEvent as u32).to_le_bytes();
            if is_event && conn.out.len() >= DELIVERIES_QUEUED_MAX {
                conn.events_dropped += 1;
                continue;
            }
            conn.out.push_back(d.msg);
        }
    }

    /// Serves `dom`'s ring: handles every whole request in `req` while fewer
    /// than [`DELIVERIES_QUEUED_MAX`] messages wait for `dom`, queues the
    /// replies and events, and writes what fits of `dom`'s queue into `rsp`.
    /// `fault` is asked whether a fault site fires now. Returns whether `dom`
    /// should be notified (bytes were consumed or produced).
    pub fn serve(
        &mut self,
        dom: DomId,
        iface: &XenstoreDomainInterface,
        fault: &mut dyn FnMut(FaultSite) -> bool,
    ) -> bool {
        let (req, _) = rings(iface);
        // Room first: replies the guest has made space for go out before
        // more requests are taken.
        let mut notify = self.flush(dom, iface);
        loop {
            let Some(conn) = self.conns.get_mut(&dom.0) else {
                return false;
            };
            if conn.broken.is_some() {
                return notify;
            }
            // Back-pressure: a guest that does not read its replies gets no
            // more served (its requests wait in its ring) rather than a
            // queue that grows without bound. Each request adds at most one
            // reply here (events are dropped at the bound instead).
            if conn.out.len() >= DELIVERIES_QUEUED_MAX {
                break;
            }
            let (header, payload) = match conn.reader.poll_message(&mut conn.req, &req, &mut notify)
            {
                Ok(Some((h, p))) => (h, p.to_vec()),
                Ok(None) => break,
                Err(e) => {
                    conn.broken = Some(e);
                    let code = match e {
                        ProtocolError::RingIndex { .. } => XENSTORE_ERROR_RINGIDX,
                        _ => XENSTORE_ERROR_PROTO,
                    };
                    iface.error.store(code, Ordering::Release);
                    return notify;
                }
            };
            let deliveries = self.handle_with_faults(dom, header, &payload, fault);
            self.route(deliveries);
        }
        notify | self.flush(dom, iface)
    }

    fn handle_with_faults(
        &mut self,
        dom: DomId,
        header: XsdSockmsg,
        payload: &[u8],
        fault: &mut dyn FnMut(FaultSite) -> bool,
    ) -> Vec<Delivery> {
        let is_commit = header.type_ == XsdSockmsgType::TransactionEnd as u32 && payload == b"T\0";
        let mut deliveries = if is_commit
            && self.state.has_transaction(dom, header.tx_id)
            && fault(FaultSite::XenstoreEagain)
        {
            self.state.abort_transaction(dom, header.tx_id);
            let mut d = self.state.take_deliveries();
            d.insert(
                0,
                Delivery {
                    to: dom,
                    msg: error_reply(&header, XenstoreError::Again),
                },
            );
            d
        } else {
            self.state.handle(dom, header, payload)
        };
        if fault(FaultSite::XenstoreMalformedReply) {
            let kind = MALFORMATIONS[self.next_malformation % MALFORMATIONS.len()];
            self.next_malformation += 1;
            // The reply is the first delivery to `dom` (see `handle`).
            if let Some(i) = deliveries.iter().position(|d| d.to == dom) {
                malform(kind, &mut deliveries, i);
            }
        }
        deliveries
    }

    /// Writes what fits of `dom`'s queued output into its `rsp` ring.
    /// Returns whether anything was written (notify `dom`).
    pub fn flush(&mut self, dom: DomId, iface: &XenstoreDomainInterface) -> bool {
        let outbox = self.state.take_deliveries();
        self.route(outbox);
        let (_, rsp) = rings(iface);
        let Some(conn) = self.conns.get_mut(&dom.0) else {
            return false;
        };
        if conn.broken.is_some() {
            return false;
        }
        let mut wrote = false;
        while let Some(front) = conn.out.front() {
            match conn.rsp.write(&rsp, &front[conn.out_written..]) {
                Ok(n) => {
                    wrote |= n > 0;
                    conn.out_written += n;
                    if conn.out_written < front.len() {
                        break;
                    }
                    conn.out.pop_front();
                    conn.out_written = 0;
                }
                Err(e) => {
                    conn.broken = Some(e);
                    iface.error.store(XENSTORE_ERROR_RINGIDX, Ordering::Release);
                    break;
                }
            }
        }
        wrote
    }
}

/// The daemon's view of the page: it consumes `req` and produces `rsp`.
type Ring<'a> = ByteRing<'a, &'a [AtomicU8]>;

fn rings(iface: &XenstoreDomainInterface) -> (Ring<'_>, Ring<'_>) {
    (
        ByteRing::new(&iface.req[..], &iface.req_cons, &iface.req_prod),
        ByteRing::new(&iface.rsp[..], &iface.rsp_cons, &iface.rsp_prod),
    )
}

fn error_reply(h: &XsdSockmsg, e: XenstoreError) -> Vec<u8> {
    let mut p = Vec::from(e.name().as_bytes());
    p.push(0);
    message(XsdSockmsgType::Error, h.req_id, h.tx_id, &p)
}

fn malform(kind: Malformation, deliveries: &mut Vec<Delivery>, i: usize) {
    let mut h = XsdSockmsg::from_bytes(
        deliveries[i].msg[..XsdSockmsg::SIZE]
            .try_into()
            .expect("16 bytes"),
    );
    let payload = deliveries[i].msg[XsdSockmsg::SIZE..].to_vec();
    let to = deliveries[i].to;
    match kind {
        Malformation::StrayId => {
            let mut stray = h;
            stray.req_id ^= 0x4000_0000;
            deliveries.insert(
                i,
                Delivery {
                    to,
                    msg: message_raw(stray, &payload),
                },
            );
        }
        Malformation::WrongType => {
            h.type_ = if h.type_ == XsdSockmsgType::Mkdir as u32 {
                XsdSockmsgType::Rm as u32
            } else {
                XsdSockmsgType::Mkdir as u32
            };
            deliveries[i].msg = message_raw(h, &payload);
        }
        Malformation::Unterminated if payload.last() == Some(&0) => {
            let p = &payload[..payload.len() - 1];
            h.len = p.len() as u32;
            deliveries[i].msg = message_raw(h, p);
        }
        Malformation::Unterminated => malform(Malformation::WrongType, deliveries, i),
        Malformation::GarbageErrno => {
            h.type_ = XsdSockmsgType::Error as u32;
            h.len = 7;
            deliveries[i].msg = message_raw(h, b"EWHAT?\0");
        }
        Malformation::Oversized => {
            h.len = (XENSTORE_PAYLOAD_MAX + 1) as u32;
            // Only the header goes out: the reader stops at it.
            deliveries[i].msg = h.to_bytes().to_vec();
        }
    }
}

fn message_raw(h: XsdSockmsg, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::from(h.to_bytes());
    v.extend_from_slice(payload);
    v
}

#[cfg(test)]
mod test {
    use super::*;
    use alloc::vec;

    const D1: DomId = DomId(1);
    const D2: DomId = DomId(2);

    fn store() -> XenstoredState {
        let mut s = XenstoredState::default();
        s.introduce(D1, "one");
        s.introduce(D2, "two");
        s
    }

    /// Sends one request and returns (reply type, reply payload), checking
    /// the echoed ids; other deliveries (events) are returned too.
    fn call(
        s: &mut XenstoredState,
        from: DomId,
        kind: u32,
        tx_id: u32,
        payload: &[u8],
    ) -> (u32, Vec<u8>, Vec<Delivery>) {
        let h = XsdSockmsg {
            type_: kind,
            req_id: 77,
            tx_id,
            len: payload.len() as u32,
        };
        let mut out = s.handle(from, h, payload);
        let reply = out.remove(0);
        assert_eq!(reply.to, from);
        let rh = XsdSockmsg::from_bytes(reply.msg[..16].try_into().unwrap());
        assert_eq!(rh.req_id, 77);
        assert_eq!(rh.tx_id, tx_id);
        assert_eq!(rh.len as usize, reply.msg.len() - 16);
        (rh.type_, reply.msg[16..].to_vec(), out)
    }

    fn ok(
        s: &mut XenstoredState,
        from: DomId,
        kind: XsdSockmsgType,
        tx: u32,
        payload: &[u8],
    ) -> Vec<u8> {
        let (t, p, _) = call(s, from, kind as u32, tx, payload);
        assert_eq!(
            t,
            kind as u32,
            "{kind:?} {payload:?} failed: {:?}",
            String::from_utf8_lossy(&p)
        );
        p
    }

    fn err(s: &mut XenstoredState, from: DomId, kind: u32, tx: u32, payload: &[u8]) -> String {
        let (t, p, _) = call(s, from, kind, tx, payload);
        assert_eq!(
            t,
            XsdSockmsgType::Error as u32,
            "expected an error, got {p:?}"
        );
        assert_eq!(p.last(), Some(&0));
        String::from_utf8(p[..p.len() - 1].to_vec()).unwrap()
    }

    use XsdSockmsgType as T;

    fn events(out: &[Delivery]) -> Vec<(DomId, String)> {
        out.iter()
            .map(|d| {
                let h = XsdSockmsg::from_bytes(d.msg[..16].try_into().unwrap());
                assert_eq!(h.type_, T::WatchEvent as u32);
                assert_eq!((h.req_id, h.tx_id), (0, 0));
                (d.to, String::from_utf8(d.msg[16..].to_vec()).unwrap())
            })
            .collect()
    }

    #[test]
    fn domain_home_has_defaults() {
        let mut s = store();
        assert_eq!(ok(&mut s, D1, T::Read, 0, b"/local/domain/1/domid\0"), b"1");
        assert_eq!(ok(&mut s, D1, T::Read, 0, b"name\0"), b"one");
        assert_eq!(
            ok(&mut s, D1, T::Directory, 0, b"/local/domain/1\0"),
            b"control\0data\0device\0domid\0name\0"
        );
        assert_eq!(
            ok(&mut s, D1, T::GetPerms, 0, b"/local/domain/1\0"),
            b"n1\0"
        );
        assert_eq!(
            ok(&mut s, D1, T::GetDomainPath, 0, b"1\0"),
            b"/local/domain/1\0"
        );
    }

    #[test]
    fn write_read_mkdir_rm_directory() {
        let mut s = store();
        assert_eq!(ok(&mut s, D1, T::Write, 0, b"data/a/b\0hello"), b"OK\0");
        assert_eq!(ok(&mut s, D1, T::Read, 0, b"data/a/b\0"), b"hello");
        // Implicit parents exist, empty, owned by the writer.
        assert_eq!(ok(&mut s, D1, T::Read, 0, b"data/a\0"), b"");
        assert_eq!(ok(&mut s, D1, T::GetPerms, 0, b"data/a\0"), b"n1\0");
        assert_eq!(ok(&mut s, D1, T::Mkdir, 0, b"data/a/c\0"), b"OK\0");
        assert_eq!(ok(&mut s, D1, T::Mkdir, 0, b"data/a/c\0"), b"OK\0");
        assert_eq!(ok(&mut s, D1, T::Directory, 0, b"data/a\0"), b"b\0c\0");
        assert_eq!(ok(&mut s, D1, T::Write, 0, b"data/a/b\0"), b"OK\0");
        assert_eq!(ok(&mut s, D1, T::Read, 0, b"data/a/b\0"), b"");
        assert_eq!(ok(&mut s, D1, T::Rm, 0, b"data/a\0"), b"OK\0");
        assert_eq!(err(&mut s, D1, T::Read as u32, 0, b"data/a/b\0"), "ENOENT");
        assert_eq!(err(&mut s, D1, T::Read as u32, 0, b"data/a\0"), "ENOENT");
        // Missing node, parent present: OK; parent missing too: ENOENT.
        assert_eq!(ok(&mut s, D1, T::Rm, 0, b"data/a\0"), b"OK\0");
        assert_eq!(err(&mut s, D1, T::Rm as u32, 0, b"data/x/y\0"), "ENOENT");
        assert_eq!(err(&mut s, DomId::DOM0, T::Rm as u32, 0, b"/\0"), "EINVAL");
        assert_eq!(
            ok(&mut s, DomId::DOM0, T::Directory, 0, b"/\0"),
            b"local\0tool\0vm\0"
        );
        // A sibling with a common prefix survives a removal.
        ok(&mut s, D1, T::Write, 0, b"data/ab\0x");
        ok(&mut s, D1, T::Write, 0, b"data/a\0y");
        ok(&mut s, D1, T::Rm, 0, b"data/a\0");
        assert_eq!(ok(&mut s, D1, T::Read, 0, b"data/ab\0"), b"x");
    }

    #[test]
    fn permissions_are_enforced() {
        let mut s = store();
        ok(&mut s, D1, T::Write, 0, b"data/secret\0s");
        assert_eq!(
            err(
                &mut s,
                D2,
                T::Read as u32,
                0,
                b"/local/domain/1/data/secret\0"
            ),
            "EACCES"
        );
        assert_eq!(
            err(&mut s, D2, T::Write as u32, 0, b"/local/domain/1/data/x\0v"),
            "EACCES"
        );
        assert_eq!(
            err(&mut s, D2, T::Directory as u32, 0, b"/local/domain/1\0"),
            "EACCES"
        );
        assert_eq!(
            err(
                &mut s,
                D2,
                T::Rm as u32,
                0,
                b"/local/domain/1/data/secret\0"
            ),
            "EACCES"
        );
        // dom0 may do anything.
        assert_eq!(
            ok(
                &mut s,
                DomId::DOM0,
                T::Read,
                0,
                b"/local/domain/1/data/secret\0"
            ),
            b"s"
        );
        // The owner grants domain 2 read access, others none.
        ok(&mut s, D1, T::SetPerms, 0, b"data/secret\0n1\0r2\0");
        assert_eq!(
            ok(&mut s, D2, T::Read, 0, b"/local/domain/1/data/secret\0"),
            b"s"
        );
        assert_eq!(
            err(
                &mut s,
                D2,
                T::Write as u32,
                0,
                b"/local/domain/1/data/secret\0v"
            ),
            "EACCES"
        );
        assert_eq!(
            ok(&mut s, D2, T::GetPerms, 0, b"/local/domain/1/data/secret\0"),
            b"n1\0r2\0"
        );
        // Only the owner changes permissions, and may not give the node away.
        assert_eq!(
            err(
                &mut s,
                D2,
                T::SetPerms as u32,
                0,
                b"/local/domain/1/data/secret\0b2\0"
            ),
            "EACCES"
        );
        assert_eq!(
            err(&mut s, D1, T::SetPerms as u32, 0, b"data/secret\0n2\0"),
            "EPERM"
        );
        // The first entry's access applies to unlisted domains.
        ok(&mut s, D1, T::SetPerms, 0, b"data/secret\0b1\0n2\0");
        assert_eq!(
            err(
                &mut s,
                D2,
                T::Read as u32,
                0,
                b"/local/domain/1/data/secret\0"
            ),
            "EACCES"
        );
        // dom0 may give a node to another domain.
        ok(
            &mut s,
            DomId::DOM0,
            T::SetPerms,
            0,
            b"/local/domain/1/data/secret\0n2\0",
        );
        assert_eq!(
            ok(&mut s, D2, T::Read, 0, b"/local/domain/1/data/secret\0"),
            b"s"
        );
        assert_eq!(
            err(&mut s, D1, T::Read as u32, 0, b"data/secret\0"),
            "EACCES"
        );
        // Creating needs write access to the nearest existing ancestor.
        assert_eq!(err(&mut s, D1, T::Write as u32, 0, b"/tool/x\0v"), "EACCES");
        assert_eq!(
            err(&mut s, D1, T::Mkdir as u32, 0, b"/local/domain/2/x\0"),
            "EACCES"
        );
    }

    #[test]
    fn watches_fire_up_front_on_change_and_on_removal() {
        let mut s = store();
        let (_, _, out) = call(
            &mut s,
            D1,
            T::Watch as u32,
            0,
            b"/local/domain/1/data/w\0tok\0",
        );
        assert_eq!(
            events(&out),
            vec![(D1, "/local/domain/1/data/w\0tok\0".into())]
        );
        let (_, _, out) = call(&mut s, D1, T::Watch as u32, 0, b"data\0rel\0");
        assert_eq!(events(&out), vec![(D1, "data\0rel\0".into())]);
        // A write below the watched node fires both, relative paths for the relative watch.
        let (_, _, out) = call(&mut s, D1, T::Write as u32, 0, b"data/w/x\0v");
        assert_eq!(
            events(&out),
            vec![
                (D1, "/local/domain/1/data/w\0tok\0".into()),
                (D1, "data/w\0rel\0".into()),
                (D1, "/local/domain/1/data/w/x\0tok\0".into()),
                (D1, "data/w/x\0rel\0".into()),
            ]
        );
        // Removing an ancestor fires the watch below it with the watch's own path.
        let (_, _, out) = call(&mut s, D1, T::Rm as u32, 0, b"data\0");
        assert_eq!(
            events(&out),
            vec![
                (D1, "/local/domain/1/data/w\0tok\0".into()),
                (D1, "data\0rel\0".into())
            ]
        );
        // Duplicates are refused; unwatch stops events.
        assert_eq!(
            err(&mut s, D1, T::Watch as u32, 0, b"data\0rel\0"),
            "EEXIST"
        );
        ok(&mut s, D1, T::Unwatch, 0, b"data\0rel\0");
        assert_eq!(
            err(&mut s, D1, T::Unwatch as u32, 0, b"data\0rel\0"),
            "ENOENT"
        );
        let (_, _, out) = call(&mut s, D1, T::Write as u32, 0, b"data/z\0v");
        assert!(events(&out).is_empty());
        // An unrelated sibling with a common prefix does not fire.
        let (_, _, out) = call(&mut s, D1, T::Write as u32, 0, b"data/ww\0v");
        assert!(events(&out).is_empty());
    }

    #[test]
    fn watch_events_respect_read_permission_and_cross_domains() {
        let mut s = store();
        call(
            &mut s,
            D2,
            T::Watch as u32,
            0,
            b"/local/domain/1/data\0t2\0",
        );
        call(
            &mut s,
            DomId::DOM0,
            T::Watch as u32,
            0,
            b"/local/domain/1/data\0t0\0",
        );
        let (_, _, out) = call(&mut s, D1, T::Write as u32, 0, b"data/k\0v");
        assert_eq!(
            events(&out),
            vec![(DomId::DOM0, "/local/domain/1/data/k\0t0\0".into())]
        );
        ok(&mut s, D1, T::SetPerms, 0, b"data/k\0n1\0r2\0");
        let (_, _, out) = call(&mut s, D1, T::Write as u32, 0, b"data/k\0w");
        assert_eq!(
            events(&out),
            vec![
                (DomId::DOM0, "/local/domain/1/data/k\0t0\0".into()),
                (D2, "/local/domain/1/data/k\0t2\0".into()),
            ]
        );
    }

    #[test]
    fn special_watches_fire_on_introduce_and_release() {
        let mut s = store();
        call(
            &mut s,
            DomId::DOM0,
            T::Watch as u32,
            0,
            b"@releaseDomain\0r\0",
        );
        call(
            &mut s,
            DomId::DOM0,
            T::Watch as u32,
            0,
            b"@introduceDomain\0i\0",
        );
        assert_eq!(
            err(&mut s, DomId::DOM0, T::Watch as u32, 0, b"@bogus\0i\0"),
            "EINVAL"
        );
        s.introduce(DomId(3), "three");
        assert_eq!(
            events(&s.take_deliveries()),
            vec![(DomId::DOM0, "@introduceDomain\0i\0".into())]
        );
        s.release(DomId(3));
        let ev = events(&s.take_deliveries());
        assert_eq!(
            ev.last(),
            Some(&(DomId::DOM0, "@releaseDomain\0r\0".into()))
        );
        assert!(!s.is_introduced(DomId(3)));
        assert_eq!(
            s.read_as(DomId::DOM0, "/local/domain/3"),
            Err(XenstoreError::NoEnt)
        );
    }

    fn start(s: &mut XenstoredState, dom: DomId) -> u32 {
        let p = ok(s, dom, T::TransactionStart, 0, b"\0");
        parse_decimal(&p[..p.len() - 1]).unwrap()
    }

    #[test]
    fn transaction_commits_atomically_and_fires_at_commit() {
        let mut s = store();
        call(&mut s, D1, T::Watch as u32, 0, b"data\0w\0");
        let tx = start(&mut s, D1);
        let (_, _, out) = call(&mut s, D1, T::Write as u32, tx, b"data/a\x001");
        assert!(events(&out).is_empty(), "no event before commit");
        ok(&mut s, D1, T::Write, tx, b"data/b\x002");
        assert_eq!(ok(&mut s, D1, T::Read, tx, b"data/a\0"), b"1");
        // Not visible outside the transaction yet.
        assert_eq!(err(&mut s, D1, T::Read as u32, 0, b"data/a\0"), "ENOENT");
        let (_, p, out) = call(&mut s, D1, T::TransactionEnd as u32, tx, b"T\0");
        assert_eq!(p, b"OK\0");
        assert_eq!(
            events(&out),
            vec![(D1, "data/a\0w\0".into()), (D1, "data/b\0w\0".into())]
        );
        assert_eq!(ok(&mut s, D1, T::Read, 0, b"data/b\0"), b"2");
        assert_eq!(s.transaction_count(D1), 0);
        assert_eq!(
            err(&mut s, D1, T::TransactionEnd as u32, tx, b"T\0"),
            "ENOENT"
        );
        assert_eq!(err(&mut s, D1, T::Read as u32, 9999, b"data/b\0"), "ENOENT");
    }

    #[test]
    fn transaction_conflicts_give_eagain_and_apply_nothing() {
        let mut s = store();
        ok(&mut s, D1, T::Write, 0, b"data/n\x000");
        // Read-then-write conflict: another writer changed what we read.
        let tx = start(&mut s, D1);
        assert_eq!(ok(&mut s, D1, T::Read, tx, b"data/n\0"), b"0");
        ok(&mut s, D1, T::Write, tx, b"data/m\x001");
        ok(
            &mut s,
            DomId::DOM0,
            T::Write,
            0,
            b"/local/domain/1/data/n\x005",
        );
        assert_eq!(
            err(&mut s, D1, T::TransactionEnd as u32, tx, b"T\0"),
            "EAGAIN"
        );
        assert_eq!(err(&mut s, D1, T::Read as u32, 0, b"data/m\0"), "ENOENT");
        // Absent-node conflict: the transaction saw no node, someone created it.
        let tx = start(&mut s, D1);
        assert_eq!(err(&mut s, D1, T::Read as u32, tx, b"data/q\0"), "ENOENT");
        ok(&mut s, D1, T::Write, 0, b"data/q\0x");
        assert_eq!(
            err(&mut s, D1, T::TransactionEnd as u32, tx, b"T\0"),
            "EAGAIN"
        );
        // Directory read conflicts with a new child.
        let tx = start(&mut s, D1);
        ok(&mut s, D1, T::Directory, tx, b"data\0");
        ok(&mut s, D1, T::Write, 0, b"data/new\0x");
        assert_eq!(
            err(&mut s, D1, T::TransactionEnd as u32, tx, b"T\0"),
            "EAGAIN"
        );
        // An unrelated change does not conflict.
        let tx = start(&mut s, D1);
        ok(&mut s, D1, T::Write, tx, b"data/n\x006");
        ok(&mut s, D2, T::Write, 0, b"data/other\0x");
        ok(&mut s, D1, T::TransactionEnd, tx, b"T\0");
        assert_eq!(ok(&mut s, D1, T::Read, 0, b"data/n\0"), b"6");
        // Abort discards.
        let tx = start(&mut s, D1);
        ok(&mut s, D1, T::Write, tx, b"data/n\x007");
        ok(&mut s, D1, T::TransactionEnd, tx, b"F\0");
        assert_eq!(ok(&mut s, D1, T::Read, 0, b"data/n\0"), b"6");
        // Nested start is refused.
        let tx = start(&mut s, D1);
        assert_eq!(
            err(&mut s, D1, T::TransactionStart as u32, tx, b"\0"),
            "EBUSY"
        );
    }

    #[test]
    fn quotas() {
        let limits = Limits {
            nodes_per_domain_max: 10,
            value_len_max: 8,
            watches_per_domain_max: 2,
            transactions_per_domain_max: 1,
        };
        let mut s = XenstoredState::new(limits);
        s.introduce(D1, "one"); // 7 nodes owned
        ok(&mut s, D1, T::Write, 0, b"data/a\0x");
        ok(&mut s, D1, T::Write, 0, b"data/b\0x");
        ok(&mut s, D1, T::Write, 0, b"data/c\0x");
        assert_eq!(err(&mut s, D1, T::Write as u32, 0, b"data/d\0x"), "EQUOTA");
        // Overwriting needs no new node.
        ok(&mut s, D1, T::Write, 0, b"data/c\0y");
        assert_eq!(
            err(&mut s, D1, T::Write as u32, 0, b"data/c\x00123456789"),
            "E2BIG"
        );
        ok(&mut s, D1, T::Watch, 0, b"data\0a\0");
        ok(&mut s, D1, T::Watch, 0, b"data\0b\0");
        assert_eq!(err(&mut s, D1, T::Watch as u32, 0, b"data\0c\0"), "EQUOTA");
        start(&mut s, D1);
        assert_eq!(
            err(&mut s, D1, T::TransactionStart as u32, 0, b"\0"),
            "EQUOTA"
        );
        // dom0 has no node quota.
        for i in 0..20u8 {
            let p = [b"/tool/n".as_slice(), &[b'a' + i], b"\0x"].concat();
            ok(&mut s, DomId::DOM0, T::Write, 0, &p);
        }
    }

    #[test]
    fn malformed_requests_get_einval() {
        let mut s = store();
        assert_eq!(
            err(&mut s, D1, T::Write as u32, 0, b"data/a"),
            "EINVAL",
            "no NUL after path"
        );
        assert_eq!(err(&mut s, D1, T::Read as u32, 0, b"data/a"), "EINVAL");
        assert_eq!(err(&mut s, D1, T::Read as u32, 0, b"data/a\0b\0"), "EINVAL");
        assert_eq!(err(&mut s, D1, T::Read as u32, 0, b"\0"), "EINVAL");
        assert_eq!(err(&mut s, D1, T::Read as u32, 0, b"data//a\0"), "EINVAL");
        assert_eq!(err(&mut s, D1, T::Read as u32, 0, b"data/a/\0"), "EINVAL");
        assert_eq!(err(&mut s, D1, T::Read as u32, 0, b"data/a b\0"), "EINVAL");
        assert_eq!(err(&mut s, D1, T::Read as u32, 0, b"data/\xff\0"), "EINVAL");
        let long = [vec![b'/'; 1], vec![b'a'; XENSTORE_ABS_PATH_MAX], vec![0]].concat();
        assert_eq!(err(&mut s, D1, T::Read as u32, 0, &long), "EINVAL");
        assert_eq!(err(&mut s, D1, T::Watch as u32, 0, b"data\0"), "EINVAL");
        assert_eq!(err(&mut s, D1, T::Watch as u32, 0, b"data\0\0"), "EINVAL");
        assert_eq!(err(&mut s, D1, T::SetPerms as u32, 0, b"data\0"), "EINVAL");
        assert_eq!(
            err(&mut s, D1, T::SetPerms as u32, 0, b"data\0x1\0"),
            "EINVAL"
        );
        assert_eq!(
            err(&mut s, D1, T::TransactionStart as u32, 0, b""),
            "EINVAL"
        );
        assert_eq!(
            err(&mut s, D1, T::TransactionEnd as u32, 0, b"X\0"),
            "EINVAL"
        );
        assert_eq!(
            err(&mut s, D1, T::GetDomainPath as u32, 0, b"x\0"),
            "EINVAL"
        );
        assert_eq!(err(&mut s, D1, 99, 0, b"\0"), "EINVAL");
        assert_eq!(err(&mut s, D1, 20, 0, b"\0"), "EINVAL");
        assert_eq!(
            err(&mut s, D1, T::WatchEvent as u32, 0, b"a\0b\0"),
            "EINVAL"
        );
        assert_eq!(err(&mut s, D1, T::Introduce as u32, 0, b"\0"), "EACCES");
        assert_eq!(
            err(&mut s, DomId::DOM0, T::Introduce as u32, 0, b"\0"),
            "ENOSYS"
        );
        // A header whose len disagrees with the payload.
        let h = XsdSockmsg {
            type_: T::Read as u32,
            req_id: 5,
            tx_id: 0,
            len: 3,
        };
        let out = s.handle(D1, h, b"data\0");
        assert_eq!(&out[0].msg[16..], b"EINVAL\0");
        // An unknown domain.
        assert_eq!(err(&mut s, DomId(9), T::Read as u32, 0, b"/\0"), "EINVAL");
    }

    #[test]
    fn direct_access_for_the_toolstack() {
        let mut s = store();
        s.mkdir_as(DomId::DOM0, "/local/domain/0/backend/vif/1/0")
            .unwrap();
        s.write_as(DomId::DOM0, "/local/domain/0/backend/vif/1/0/state", b"1")
            .unwrap();
        assert_eq!(
            s.directory_as(DomId::DOM0, "/local/domain/0/backend/vif/1/0")
                .unwrap(),
            vec![String::from("state")]
        );
        s.set_perms_as(
            DomId::DOM0,
            "/local/domain/0/backend/vif/1/0",
            &[
                Permission {
                    domid: DomId::DOM0,
                    access: Access::None,
                },
                Permission {
                    domid: D1,
                    access: Access::Read,
                },
            ],
        )
        .unwrap();
        assert_eq!(s.read_as(D1, "/local/domain/0/backend/vif/1/0"), Ok(vec![]));
        assert_eq!(
            s.read_as(D1, "/local/domain/0/backend/vif/1/0/state"),
            Err(XenstoreError::Acces)
        );
        s.rm_as(DomId::DOM0, "/local/domain/0/backend").unwrap();
        assert_eq!(
            s.read_as(DomId::DOM0, "/local/domain/0/backend"),
            Err(XenstoreError::NoEnt)
        );
        assert_eq!(s.perms("/local/domain/1").unwrap()[0].domid, D1);
    }

    // ---- The ring server ----

    struct Page(alloc::boxed::Box<XenstoreDomainInterface>);

    fn page() -> Page {
        use core::sync::atomic::AtomicU32;
        Page(alloc::boxed::Box::new(XenstoreDomainInterface {
            req: core::array::from_fn(|_| AtomicU8::new(0)),
            rsp: core::array::from_fn(|_| AtomicU8::new(0)),
            req_cons: AtomicU32::new(0),
            req_prod: AtomicU32::new(0),
            rsp_cons: AtomicU32::new(0),
            rsp_prod: AtomicU32::new(0),
            server_features: AtomicU32::new(0),
            connection: AtomicU32::new(0),
            error: AtomicU32::new(0),
        }))
    }

    /// The guest's side, by hand: writes a request, reads whole messages.
    struct Guest {
        req: Producer,
        rsp: Consumer,
        reader: MessageReader,
    }

    impl Guest {
        fn new(p: &Page) -> Guest {
            let req = ByteRing::new(&p.0.req[..], &p.0.req_cons, &p.0.req_prod);
            let rsp = ByteRing::new(&p.0.rsp[..], &p.0.rsp_cons, &p.0.rsp_prod);
            Guest {
                req: Producer::attach(&req).unwrap(),
                rsp: Consumer::attach(&rsp).unwrap(),
                reader: MessageReader::new(),
            }
        }
        fn send(&mut self, p: &Page, bytes: &[u8]) -> usize {
            let req = ByteRing::new(&p.0.req[..], &p.0.req_cons, &p.0.req_prod);
            self.req.write(&req, bytes).unwrap()
        }
        fn recv(&mut self, p: &Page) -> Vec<(XsdSockmsg, Vec<u8>)> {
            let rsp = ByteRing::new(&p.0.rsp[..], &p.0.rsp_cons, &p.0.rsp_prod);
            let mut v = Vec::new();
            let mut consumed = false;
            while let Some((h, payload)) = self
                .reader
                .poll_message(&mut self.rsp, &rsp, &mut consumed)
                .unwrap()
            {
                v.push((h, payload.to_vec()));
            }
            v
        }
    }

    fn req(kind: T, req_id: u32, tx_id: u32, payload: &[u8]) -> Vec<u8> {
        message(kind, req_id, tx_id, payload)
    }

    fn never(_: FaultSite) -> bool {
        false
    }

    #[test]
    fn ring_server_round_trip_and_large_values() {
        let mut srv = XenstoreRingServer::new(XenstoredState::new(Limits {
            value_len_max: 4000,
            ..Limits::default()
        }));
        let p = page();
        srv.connect(D1, "one", &p.0).unwrap();
        let mut g = Guest::new(&p);
        // A value larger than the ring goes through in pieces.
        let value = vec![b'v'; 3000];
        let msg = req(T::Write, 1, 0, &[b"data/big\0".as_slice(), &value].concat());
        let mut sent = 0;
        let mut replies = Vec::new();
        for _ in 0..10 {
            sent += g.send(&p, &msg[sent..]);
            srv.serve(D1, &p.0, &mut never);
            replies.extend(g.recv(&p));
        }
        assert_eq!(sent, msg.len());
        assert_eq!(replies.len(), 1);
        assert_eq!(replies[0].1, b"OK\0");
        g.send(&p, &req(T::Read, 2, 0, b"data/big\0"));
        let mut got = Vec::new();
        for _ in 0..10 {
            srv.serve(D1, &p.0, &mut never);
            got.extend(g.recv(&p));
        }
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0.req_id, 2);
        assert_eq!(got[0].1, value);
    }

    #[test]
    fn ring_server_routes_events_to_other_domains() {
        let mut srv = XenstoreRingServer::new(XenstoredState::default());
        let (p1, p2) = (page(), page());
        srv.connect(D1, "one", &p1.0).unwrap();
        srv.connect(D2, "two", &p2.0).unwrap();
        let (mut g1, mut g2) = (Guest::new(&p1), Guest::new(&p2));
        g2.send(&p2, &req(T::Watch, 1, 0, b"@introduceDomain\0i\0"));
        assert!(srv.serve(D2, &p2.0, &mut never));
        assert_eq!(g2.recv(&p2).len(), 2, "ack and the initial event");
        g1.send(&p1, &req(T::Rm, 1, 0, b"/local/domain/2\0"));
        srv.serve(D1, &p1.0, &mut never);
        assert_eq!(g1.recv(&p1)[0].1, b"EACCES\0");
        srv.state_mut().introduce(DomId(3), "three");
        assert_eq!(srv.domains_with_output(), vec![D2]);
        assert!(srv.flush(D2, &p2.0));
        let ev = g2.recv(&p2);
        assert_eq!(ev[0].1, b"@introduceDomain\0i\0");
    }

    #[test]
    fn ring_server_breaks_on_oversized_request_and_bad_index() {
        let mut srv = XenstoreRingServer::new(XenstoredState::default());
        let p = page();
        srv.connect(D1, "one", &p.0).unwrap();
        let mut g = Guest::new(&p);
        let h = XsdSockmsg {
            type_: T::Read as u32,
            req_id: 1,
            tx_id: 0,
            len: 5000,
        };
        g.send(&p, &h.to_bytes());
        srv.serve(D1, &p.0, &mut never);
        assert_eq!(srv.broken(D1), Some(ProtocolError::PayloadTooLong(5000)));
        assert_eq!(p.0.error.load(Ordering::Relaxed), XENSTORE_ERROR_PROTO);

        let p = page();
        srv.connect(D2, "two", &p.0).unwrap();
        p.0.req_prod.store(5000, Ordering::Relaxed);
        srv.serve(D2, &p.0, &mut never);
        assert!(matches!(
            srv.broken(D2),
            Some(ProtocolError::RingIndex { .. })
        ));
        assert_eq!(p.0.error.load(Ordering::Relaxed), XENSTORE_ERROR_RINGIDX);
    }

    #[test]
    fn ring_server_faults() {
        let mut srv = XenstoreRingServer::new(XenstoredState::default());
        let p = page();
        srv.connect(D1, "one", &p.0).unwrap();
        let mut g = Guest::new(&p);
        // Forced EAGAIN on a commit that did not conflict.
        g.send(&p, &req(T::TransactionStart, 1, 0, b"\0"));
        srv.serve(D1, &p.0, &mut never);
        let r = g.recv(&p);
        let tx = parse_decimal(&r[0].1[..r[0].1.len() - 1]).unwrap();
        g.send(&p, &req(T::TransactionEnd, 2, tx, b"T\0"));
        srv.serve(D1, &p.0, &mut |s| s == FaultSite::XenstoreEagain);
        assert_eq!(g.recv(&p)[0].1, b"EAGAIN\0");
        assert_eq!(srv.state().transaction_count(D1), 0);
        // Malformed replies, in turn.
        let mut malformed = |g: &mut Guest, id: u32| {
            g.send(&p, &req(T::Mkdir, id, 0, b"data/m\0"));
            srv.serve(D1, &p.0, &mut |s| s == FaultSite::XenstoreMalformedReply);
            g.recv(&p)
        };
        let r = malformed(&mut g, 10);
        assert_eq!(r.len(), 2, "stray copy, then the real reply");
        assert_eq!(r[0].0.req_id, 10 ^ 0x4000_0000);
        assert_eq!((r[1].0.req_id, r[1].1.as_slice()), (10, b"OK\0".as_slice()));
        let r = malformed(&mut g, 11);
        assert_eq!(r[0].0.type_, T::Rm as u32);
        let r = malformed(&mut g, 12);
        assert_eq!(r[0].1, b"OK");
        let r = malformed(&mut g, 13);
        assert_eq!(
            (r[0].0.type_, r[0].1.as_slice()),
            (T::Error as u32, b"EWHAT?\0".as_slice())
        );
        g.send(&p, &req(T::Mkdir, 14, 0, b"data/m\0"));
        srv.serve(D1, &p.0, &mut |s| s == FaultSite::XenstoreMalformedReply);
        let rsp = ByteRing::new(&p.0.rsp[..], &p.0.rsp_cons, &p.0.rsp_prod);
        let mut consumed = false;
        assert_eq!(
            g.reader.poll_message(&mut g.rsp, &rsp, &mut consumed),
            Err(ProtocolError::PayloadTooLong(4097))
        );
    }

    #[test]
    fn ring_server_bounds_queued_events() {
        let mut srv = XenstoreRingServer::new(XenstoredState::default());
        let p = page();
        srv.connect(D1, "one", &p.0).unwrap();
        let mut g = Guest::new(&p);
        g.send(&p, &req(T::Watch, 1, 0, b"data\0t\0"));
        srv.serve(D1, &p.0, &mut never);
        // The guest stops reading; dom0 keeps writing.
        for i in 0..(DELIVERIES_QUEUED_MAX as u32 + 50) {
            let path = format!("/local/domain/1/data/k{i}");
            srv.state_mut().write_as(DomId::DOM0, &path, b"v").unwrap();
            srv.flush(D1, &p.0);
        }
        assert!(srv.events_dropped(D1) > 0);
        assert!(srv.conns[&1].out.len() <= DELIVERIES_QUEUED_MAX);
        let _ = g.recv(&p);
    }

    #[test]
    fn a_transaction_is_bounded() {
        // A hostile guest reads ever new paths, or writes again and again,
        // in one transaction: past TRANSACTION_ENTRIES_MAX it gets EQUOTA,
        // and what the daemon holds for the transaction stays bounded.
        fn call(xs: &mut XenstoredState, kind: T, tx_id: u32, payload: &[u8]) -> (u32, Vec<u8>) {
            let header = XsdSockmsg {
                type_: kind as u32,
                req_id: 7,
                tx_id,
                len: payload.len() as u32,
            };
            let d = xs.handle(D1, header, payload);
            let h = XsdSockmsg::from_bytes(d[0].msg[..XsdSockmsg::SIZE].try_into().unwrap());
            (h.type_, d[0].msg[XsdSockmsg::SIZE..].to_vec())
        }
        for write in [false, true] {
            let mut xs = XenstoredState::default();
            xs.introduce(D1, "one");
            let (kind, id) = call(&mut xs, T::TransactionStart, 0, b"\0");
            assert_eq!(kind, T::TransactionStart as u32);
            let tx: u32 = core::str::from_utf8(&id[..id.len() - 1])
                .unwrap()
                .parse()
                .unwrap();
            let mut quota = 0;
            for i in 0..(2 * TRANSACTION_ENTRIES_MAX) {
                let (kind, payload) = if write {
                    call(&mut xs, T::Write, tx, b"/local/domain/1/k\0v")
                } else {
                    let path = format!("/local/domain/1/k{i}\0");
                    call(&mut xs, T::Read, tx, path.as_bytes())
                };
                if kind == T::Error as u32 && payload == b"EQUOTA\0" {
                    quota += 1;
                }
            }
            assert!(quota >= TRANSACTION_ENTRIES_MAX, "write {write}: {quota}");
            let t = &xs.domains[&1].transactions[&tx];
            assert!(
                t.accessed.len() <= TRANSACTION_ENTRIES_MAX + 8,
                "write {write}"
            );
            assert!(t.ops.len() <= TRANSACTION_ENTRIES_MAX, "write {write}");
        }
    }

    #[test]
    fn ring_server_bounds_queued_replies() {
        // A hostile guest sends requests and never reads the replies: the
        // daemon stops taking requests once its queue for the guest is full
        // (the request ring then fills), instead of queueing without bound.
        let mut srv = XenstoreRingServer::new(XenstoredState::default());
        let p = page();
        srv.connect(D1, "one", &p.0).unwrap();
        let mut g = Guest::new(&p);
        let mut stream = Vec::new();
        let mut sent = 0;
        for i in 0..(8 * DELIVERIES_QUEUED_MAX as u32) {
            stream.extend(req(T::Read, i, 0, b"data/none\0"));
            sent += g.send(&p, &stream[sent..]);
            srv.serve(D1, &p.0, &mut never);
            assert!(srv.conns[&1].out.len() <= DELIVERIES_QUEUED_MAX);
        }
        assert!(sent < stream.len(), "the guest's request ring filled up");
        // Once the guest reads, the daemon goes on: every request is
        // answered, in order.
        let mut ids = Vec::new();
        for _ in 0..(64 * DELIVERIES_QUEUED_MAX) {
            sent += g.send(&p, &stream[sent..]);
            srv.serve(D1, &p.0, &mut never);
            ids.extend(g.recv(&p).into_iter().map(|(h, _)| h.req_id));
            if sent == stream.len() && !srv.has_output(D1) && ids.len() == 8 * DELIVERIES_QUEUED_MAX
            {
                break;
            }
        }
        let want: Vec<u32> = (0..(8 * DELIVERIES_QUEUED_MAX as u32)).collect();
        assert_eq!(ids, want);
    }

    proptest::proptest! {
        /// Any message from any domain gets exactly one reply, first, to the
        /// sender, echoing its ids; the daemon never panics; events carry
        /// ids 0. Payloads are drawn from pieces of valid requests so that
        /// many reach deep into the tree operations.
        #[test]
        fn any_request_gets_one_reply(
            msgs in proptest::collection::vec(
                (0u32..25, 0usize..3, proptest::collection::vec(0usize..12, 0..5), 0u32..3),
                1..60,
            ),
        ) {
            const PIECES: [&[u8]; 12] = [
                b"data", b"/local/domain/1/data", b"\0", b"x", b"/", b"data/a/b",
                b"n1", b"r2", b"T", b"tok", b"@releaseDomain", b"\xff",
            ];
            let mut s = store();
            let doms = [DomId::DOM0, D1, D2];
            for (i, (kind, dom, pieces, tx)) in msgs.into_iter().enumerate() {
                let payload: Vec<u8> = pieces.iter().flat_map(|&p| PIECES[p].iter().copied()).collect();
                let h = XsdSockmsg { type_: kind, req_id: i as u32 + 1, tx_id: tx, len: payload.len() as u32 };
                let out = s.handle(doms[dom], h, &payload);
                proptest::prop_assert!(!out.is_empty());
                proptest::prop_assert_eq!(out[0].to, doms[dom]);
                let rh = XsdSockmsg::from_bytes(out[0].msg[..16].try_into().unwrap());
                proptest::prop_assert_eq!((rh.req_id, rh.tx_id), (i as u32 + 1, tx));
                proptest::prop_assert!(rh.type_ == kind || rh.type_ == T::Error as u32);
                for d in &out[1..] {
                    let eh = XsdSockmsg::from_bytes(d.msg[..16].try_into().unwrap());
                    proptest::prop_assert_eq!(eh.type_, T::WatchEvent as u32);
                    proptest::prop_assert_eq!((eh.req_id, eh.tx_id), (0, 0));
                }
            }
        }
    }
}
