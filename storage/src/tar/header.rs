//! Tar wire format: the 512-byte header block, numeric fields, PAX records.
//!
//! Plain parsing with no state and no I/O. Layout (POSIX ustar, with the GNU
//! variant noted):
//!
//! ```text
//! offset size field            offset size field
//!      0  100 name                 257    6 magic "ustar\0" (GNU: "ustar ")
//!    100    8 mode                 263    2 version "00"    (GNU: " \0")
//!    108    8 uid                  265   32 uname
//!    116    8 gid                  297   32 gname
//!    124   12 size                 329    8 devmajor
//!    136   12 mtime                337    8 devminor
//!    148    8 chksum               345  155 prefix (ustar only; GNU puts
//!    156    1 typeflag                      atime/ctime etc. there)
//!    157  100 linkname
//! ```
//!
//! Numbers are octal ASCII, optionally led by spaces and ended by NUL or
//! space; GNU's base-256 form (high bit of the first byte set) is accepted
//! for numbers too large for octal. The checksum is the sum of the header's
//! bytes with the chksum field read as eight spaces (unsigned, or signed as
//! some old tars computed it).

use core::fmt;

/// Bytes in a tar block (header or data padding unit).
pub const BLOCK: usize = 512;

/// A numeric header field, named in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Field {
    /// `mode`.
    Mode,
    /// `size`.
    Size,
    /// `mtime`.
    Mtime,
    /// `chksum`.
    Checksum,
    /// A PAX `size` record.
    PaxSize,
    /// A PAX `mtime` record.
    PaxMtime,
    /// A PAX record's length prefix.
    PaxLength,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Mode => "mode",
            Field::Size => "size",
            Field::Mtime => "mtime",
            Field::Checksum => "chksum",
            Field::PaxSize => "PAX size",
            Field::PaxMtime => "PAX mtime",
            Field::PaxLength => "PAX record length",
        })
    }
}

/// Why a header block or a numeric field could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderError {
    /// The stored checksum does not match the header's bytes.
    BadChecksum,
    /// A numeric field holds something other than octal digits.
    NonOctal(Field),
    /// A numeric field's value does not fit in 64 bits.
    Oversized(Field),
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::BadChecksum => f.write_str("header checksum mismatch"),
            HeaderError::NonOctal(field) => write!(f, "{field} field is not an octal number"),
            HeaderError::Oversized(field) => write!(f, "{field} field does not fit in 64 bits"),
        }
    }
}

impl core::error::Error for HeaderError {}

/// The type of a header (`typeflag`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeFlag {
    /// `'0'`, `'\0'` or `'7'` (contiguous): a regular file.
    File,
    /// `'1'`: a hard link to `linkname`.
    HardLink,
    /// `'2'`: a symbolic link to `linkname`.
    Symlink,
    /// `'5'`: a directory.
    Directory,
    /// `'x'`: a PAX extended header for the next entry.
    PaxLocal,
    /// `'g'`: a PAX global extended header (read past, not applied).
    PaxGlobal,
    /// `'L'`: GNU long name for the next entry.
    GnuLongName,
    /// `'K'`: GNU long link name for the next entry.
    GnuLongLink,
    /// Anything else (devices, FIFOs, GNU sparse ...): kept as "other".
    Other(u8),
}

impl TypeFlag {
    fn from_byte(b: u8) -> TypeFlag {
        match b {
            b'0' | 0 | b'7' => TypeFlag::File,
            b'1' => TypeFlag::HardLink,
            b'2' => TypeFlag::Symlink,
            b'5' => TypeFlag::Directory,
            b'x' => TypeFlag::PaxLocal,
            b'g' => TypeFlag::PaxGlobal,
            b'L' => TypeFlag::GnuLongName,
            b'K' => TypeFlag::GnuLongLink,
            other => TypeFlag::Other(other),
        }
    }
}

/// A parsed header block. Name fields are raw bytes (NUL-trimmed); the store
/// decides what they mean.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    /// `name`, or `prefix` + "/" + `name` split in two for ustar.
    pub prefix: &'a [u8],
    /// `name`.
    pub name: &'a [u8],
    /// `linkname`.
    pub linkname: &'a [u8],
    /// `mode` (permission bits and more).
    pub mode: u32,
    /// `size`: bytes of data following the header.
    pub size: u64,
    /// `mtime`: seconds since the Unix epoch.
    pub mtime: u64,
    /// `typeflag`.
    pub typeflag: TypeFlag,
}

/// Whether a block is all zeros (the end-of-archive marker is two of them).
pub fn is_zero_block(block: &[u8; BLOCK]) -> bool {
    block.iter().all(|&b| b == 0)
}

/// Parses one header block, checking its checksum first.
///
/// # Errors
///
/// [`HeaderError::BadChecksum`], [`HeaderError::NonOctal`] or
/// [`HeaderError::Oversized`].
pub fn parse(block: &[u8; BLOCK]) -> Result<Header<'_>, HeaderError> {
    let stored = number(&block[148..156], Field::Checksum)?;
    let (unsigned, signed) = checksums(block);
    if stored != unsigned && stored as i64 != signed {
        return Err(HeaderError::BadChecksum);
    }
    let mode = number(&block[100..108], Field::Mode)?;
    let size = number(&block[124..136], Field::Size)?;
    let mtime = number(&block[136..148], Field::Mtime)?;
    let posix = &block[257..263] == b"ustar\0";
    Ok(Header {
        prefix: if posix {
            trim_nul(&block[345..500])
        } else {
            &[]
        },
        name: trim_nul(&block[0..100]),
        linkname: trim_nul(&block[157..257]),
        mode: u32::try_from(mode & 0o7777_7777).unwrap_or(0),
        size,
        mtime,
        typeflag: TypeFlag::from_byte(block[156]),
    })
}

/// The header's checksum computed both ways (chksum field as spaces).
fn checksums(block: &[u8; BLOCK]) -> (u64, i64) {
    let mut unsigned = 0u64;
    let mut signed = 0i64;
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    (unsigned, signed)
}

/// Bytes up to the first NUL.
pub fn trim_nul(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

/// Parses a numeric header field: octal ASCII (leading spaces, ended by
/// NUL, space or the field's end; empty means 0), or GNU base-256.
///
/// # Errors
///
/// [`HeaderError::NonOctal`] for any other byte, [`HeaderError::Oversized`]
/// when the value needs more than 64 bits.
pub fn number(field: &[u8], which: Field) -> Result<u64, HeaderError> {
    if let Some(&first) = field.first() {
        if first & 0x80 != 0 {
            return base256(field, which);
        }
    }
    let mut digits = field;
    while let [b' ', rest @ ..] = digits {
        digits = rest;
    }
    let end = digits
        .iter()
        .position(|&b| b == 0 || b == b' ')
        .unwrap_or(digits.len());
    // After the terminator only NULs and spaces may follow.
    if digits[end..].iter().any(|&b| b != 0 && b != b' ') {
        return Err(HeaderError::NonOctal(which));
    }
    let mut value = 0u64;
    for &d in &digits[..end] {
        if !(b'0'..=b'7').contains(&d) {
            return Err(HeaderError::NonOctal(which));
        }
        value = value
            .checked_mul(8)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or(HeaderError::Oversized(which))?;
    }
    Ok(value)
}

/// GNU base-256: the first byte's high bit marks it; the rest of the field
/// is a big-endian two's-complement number. Negative values are refused.
fn base256(field: &[u8], which: Field) -> Result<u64, HeaderError> {
    if field[0] & 0x40 != 0 {
        // Negative (e.g. an mtime before 1970): not representable here.
        return Err(HeaderError::Oversized(which));
    }
    let mut value = u64::from(field[0] & 0x3f);
    for &b in &field[1..] {
        if value >> 56 != 0 {
            return Err(HeaderError::Oversized(which));
        }
        value = (value << 8) | u64::from(b);
    }
    Ok(value)
}

/// Why a PAX extended header's data could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PaxError {
    /// A record is not `"<len> <key>=<value>\n"` with a correct length.
    Malformed,
    /// A numeric record (size, mtime) is not a decimal number that fits.
    BadNumber(Field),
}

impl fmt::Display for PaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PaxError::Malformed => f.write_str("malformed PAX record"),
            PaxError::BadNumber(field) => write!(f, "{field} record is not a valid number"),
        }
    }
}

impl core::error::Error for PaxError {}

/// The PAX records Ringlet uses; the others are skipped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pax<'a> {
    /// `path`.
    pub path: Option<&'a [u8]>,
    /// `linkpath`.
    pub linkpath: Option<&'a [u8]>,
    /// `size`.
    pub size: Option<u64>,
    /// `mtime` (whole seconds; a fraction is dropped).
    pub mtime: Option<u64>,
}

/// Parses PAX extended header data: records `"<len> <key>=<value>\n"`, where
/// `<len>` counts the whole record in decimal. Later records win.
///
/// # Errors
///
/// [`PaxError::Malformed`] or [`PaxError::BadNumber`].
pub fn parse_pax(mut data: &[u8]) -> Result<Pax<'_>, PaxError> {
    let mut pax = Pax::default();
    // Data is padded with NULs to the block in some writers; stop there.
    while let Some(&first) = data.first() {
        if first == 0 {
            break;
        }
        let space = data
            .iter()
            .position(|&b| b == b' ')
            .ok_or(PaxError::Malformed)?;
        let len = decimal(&data[..space]).ok_or(PaxError::Malformed)?;
        let len = usize::try_from(len).map_err(|_| PaxError::Malformed)?;
        if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err(PaxError::Malformed);
        }
        let record = &data[space + 1..len - 1];
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or(PaxError::Malformed)?;
        let (key, value) = (&record[..eq], &record[eq + 1..]);
        match key {
            b"path" => pax.path = Some(value),
            b"linkpath" => pax.linkpath = Some(value),
            b"size" => {
                pax.size = Some(decimal(value).ok_or(PaxError::BadNumber(Field::PaxSize))?);
            }
            b"mtime" => {
                let whole = value.split(|&b| b == b'.').next().unwrap_or(value);
                pax.mtime = Some(decimal(whole).ok_or(PaxError::BadNumber(Field::PaxMtime))?);
            }
            _ => {}
        }
        data = &data[len..];
    }
    Ok(pax)
}

/// A non-empty run of ASCII decimal digits that fits in u64.
fn decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |v, &d| {
        if d.is_ascii_digit() {
            v.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        } else {
            None
        }
    })
}

#[cfg(test)]
pub(crate) mod test {
    use super::*;

    /// Builds a header block by hand (test fixture), checksum filled in.
    pub(crate) fn block(name: &[u8], size: u64, typeflag: u8) -> [u8; BLOCK] {
        let mut b = [0u8; BLOCK];
        b[..name.len()].copy_from_slice(name);
        b[100..107].copy_from_slice(b"0000644");
        b[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        b[136..147].copy_from_slice(b"14717464061");
        b[156] = typeflag;
        b[257..263].copy_from_slice(b"ustar\0");
        b[263..265].copy_from_slice(b"00");
        fix_checksum(&mut b);
        b
    }

    pub(crate) fn fix_checksum(b: &mut [u8; BLOCK]) {
        b[148..156].copy_from_slice(b"        ");
        let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
        b[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    }

    #[test]
    fn parses_a_ustar_header() {
        let mut b = block(b"hello.txt", 1234, b'0');
        b[345..348].copy_from_slice(b"dir");
        fix_checksum(&mut b);
        let h = parse(&b).unwrap();
        assert_eq!(h.name, b"hello.txt");
        assert_eq!(h.prefix, b"dir");
        assert_eq!(h.size, 1234);
        assert_eq!(h.mode, 0o644);
        assert_eq!(h.mtime, 0o14717464061);
        assert_eq!(h.typeflag, TypeFlag::File);
    }

    #[test]
    fn gnu_magic_ignores_prefix_area() {
        let mut b = block(b"f", 0, b'0');
        b[257..265].copy_from_slice(b"ustar  \0");
        b[345..350].copy_from_slice(b"junk!");
        fix_checksum(&mut b);
        assert_eq!(parse(&b).unwrap().prefix, b"");
    }

    #[test]
    fn bad_checksum_is_refused() {
        let mut b = block(b"f", 1, b'0');
        b[0] = b'g';
        assert_eq!(parse(&b), Err(HeaderError::BadChecksum));
    }

    #[test]
    fn signed_checksum_is_accepted() {
        let mut b = block(b"\xc3\xa9t\xc3\xa9", 1, b'0');
        b[148..156].copy_from_slice(b"        ");
        let signed: i64 = b.iter().map(|&x| i64::from(x as i8)).sum();
        b[148..155].copy_from_slice(format!("{signed:06o}\0").as_bytes());
        assert!(parse(&b).is_ok());
    }

    #[test]
    fn numbers() {
        assert_eq!(number(b"0000644\0", Field::Mode), Ok(0o644));
        assert_eq!(number(b"  644 \0\0", Field::Mode), Ok(0o644));
        assert_eq!(number(b"\0\0\0\0", Field::Mode), Ok(0));
        assert_eq!(number(b"77777777777\0", Field::Size), Ok(0o77777777777));
        assert_eq!(
            number(b"0009\0", Field::Size),
            Err(HeaderError::NonOctal(Field::Size))
        );
        assert_eq!(
            number(b"12 3\0", Field::Size),
            Err(HeaderError::NonOctal(Field::Size))
        );
        assert_eq!(
            number(b"-1\0", Field::Mtime),
            Err(HeaderError::NonOctal(Field::Mtime))
        );
        // 2^64 in octal does not fit.
        assert_eq!(
            number(b"2000000000000000000000", Field::Size),
            Err(HeaderError::Oversized(Field::Size))
        );
        // Base-256: 0x80 then big-endian.
        let mut f = [0u8; 12];
        f[0] = 0x80;
        f[8..].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(number(&f, Field::Size), Ok(0xffff_ffff));
        f[2] = 1; // 2^72 set: too large
        assert_eq!(
            number(&f, Field::Size),
            Err(HeaderError::Oversized(Field::Size))
        );
        f[0] = 0xff; // negative
        assert_eq!(
            number(&f, Field::Mtime),
            Err(HeaderError::Oversized(Field::Mtime))
        );
    }

    #[test]
    fn pax_records() {
        let data = b"29 path=a/very/long/path.txt\n16 linkpath=x/y\n15 size=123456\n27 mtime=1700000000.123456\n9 foo=ba\n";
        let pax = parse_pax(data).unwrap();
        assert_eq!(pax.path, Some(&b"a/very/long/path.txt"[..]));
        assert_eq!(pax.linkpath, Some(&b"x/y"[..]));
        assert_eq!(pax.size, Some(123456));
        assert_eq!(pax.mtime, Some(1_700_000_000));
        // NUL padding after the records ends them.
        assert_eq!(
            parse_pax(b"11 path=ab\n\0\0\0").unwrap().path,
            Some(&b"ab"[..])
        );
    }

    #[test]
    fn pax_malformed() {
        for bad in [
            &b"12 path=ab\n"[..], // length too large
            b"10 path=ab\n",      // length too small: record lacks its newline
            b"x path=a\n",
            b"11 pathxab\n",
            b"5 a=b",
            b"99999999999999999999999 path=a\n",
            b"3 \n",
        ] {
            assert_eq!(
                parse_pax(bad),
                Err(PaxError::Malformed),
                "{:?}",
                core::str::from_utf8(bad)
            );
        }
        assert_eq!(
            parse_pax(b"11 size=1x\n"),
            Err(PaxError::BadNumber(Field::PaxSize))
        );
        assert_eq!(
            parse_pax(b"35 size=99999999999999999999999999\n"),
            Err(PaxError::BadNumber(Field::PaxSize))
        );
    }

    #[test]
    fn typeflags() {
        for (b, t) in [
            (b'0', TypeFlag::File),
            (0, TypeFlag::File),
            (b'7', TypeFlag::File),
            (b'1', TypeFlag::HardLink),
            (b'2', TypeFlag::Symlink),
            (b'5', TypeFlag::Directory),
            (b'x', TypeFlag::PaxLocal),
            (b'g', TypeFlag::PaxGlobal),
            (b'L', TypeFlag::GnuLongName),
            (b'K', TypeFlag::GnuLongLink),
            (b'3', TypeFlag::Other(b'3')),
        ] {
            assert_eq!(TypeFlag::from_byte(b), t);
        }
    }
}
