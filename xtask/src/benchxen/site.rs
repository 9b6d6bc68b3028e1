//! The site every guest serves: four files (13 B, 4 KiB, 64 KiB, 1 MiB) and
//! the ustar image of them that goes on each guest's first vbd.

/// One file of the site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiteFile {
    /// The name in the image and the URL path after `/`.
    pub name: &'static str,
    /// The short key used in figure names and the table (`13b`, `4k`, ...).
    pub key: &'static str,
    /// Its size in bytes.
    pub bytes: usize,
}

/// The files, smallest first.
pub const FILES: [SiteFile; 4] = [
    SiteFile {
        name: "hello.txt",
        key: "13b",
        bytes: 13,
    },
    SiteFile {
        name: "4k.bin",
        key: "4k",
        bytes: 4096,
    },
    SiteFile {
        name: "64k.bin",
        key: "64k",
        bytes: 65536,
    },
    SiteFile {
        name: "1m.bin",
        key: "1m",
        bytes: 1 << 20,
    },
];

/// The 13-byte file's content.
const HELLO: &[u8; 13] = b"Hello, world\n";

/// A file's content: the greeting for the 13-byte file, bytes from a fixed
/// xorshift sequence (seeded by the size) for the others, so a truncated or
/// shifted answer never matches.
pub fn content(file: &SiteFile) -> Vec<u8> {
    if file.bytes == HELLO.len() {
        return HELLO.to_vec();
    }
    let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ file.bytes as u64;
    let mut out = Vec::with_capacity(file.bytes + 8);
    while out.len() < file.bytes {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(file.bytes);
    out
}

/// ustar block size.
const BLOCK: usize = 512;

/// Why a file cannot go into the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TarError {
    /// The name does not fit ustar's 100-byte name field, or is empty.
    Name(String),
    /// The size does not fit the 11 octal digits of the size field.
    TooLarge(String),
}

impl std::fmt::Display for TarError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Name(n) => write!(f, "tar: bad file name {n:?}"),
            Self::TooLarge(n) => write!(f, "tar: {n} is too large for ustar"),
        }
    }
}

impl std::error::Error for TarError {}

/// A ustar archive of regular files (mode 0644, owner 0, mtime 0), ended by
/// two zero blocks; a whole number of 512-byte blocks, so it is a disk
/// image as it is.
pub fn tar(files: &[(&str, &[u8])]) -> Result<Vec<u8>, TarError> {
    let mut out = Vec::new();
    for (name, data) in files {
        if name.is_empty() || name.len() > 99 || !name.is_ascii() {
            return Err(TarError::Name((*name).to_string()));
        }
        if data.len() as u64 >= 1 << 33 {
            return Err(TarError::TooLarge((*name).to_string()));
        }
        let mut header = [0u8; BLOCK];
        header[..name.len()].copy_from_slice(name.as_bytes());
        octal(&mut header[100..108], 0o644);
        octal(&mut header[108..116], 0);
        octal(&mut header[116..124], 0);
        octal(&mut header[124..136], data.len() as u64);
        octal(&mut header[136..148], 0);
        header[156] = b'0';
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        // The checksum is computed with its own field as spaces.
        header[148..156].copy_from_slice(b"        ");
        let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
        octal(&mut header[148..155], u64::from(sum));
        header[155] = b' ';
        out.extend_from_slice(&header);
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(BLOCK), 0);
    }
    out.resize(out.len() + 2 * BLOCK, 0);
    Ok(out)
}

/// Writes `value` as zero-padded octal digits ending in NUL.
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    assert_eq!(
        text.len(),
        digits,
        "{value} does not fit {digits} octal digits"
    );
    field[..digits].copy_from_slice(text.as_bytes());
    field[digits] = 0;
}

/// The site's image: every file of [`FILES`] in one ustar archive.
pub fn image() -> Result<Vec<u8>, TarError> {
    let contents: Vec<(&str, Vec<u8>)> = FILES.iter().map(|f| (f.name, content(f))).collect();
    let refs: Vec<(&str, &[u8])> = contents.iter().map(|(n, d)| (*n, d.as_slice())).collect();
    tar(&refs)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn contents_have_their_sizes_and_differ() {
        for f in &FILES {
            assert_eq!(content(f).len(), f.bytes, "{}", f.name);
        }
        assert_eq!(content(&FILES[0]), b"Hello, world\n");
        let a = content(&FILES[1]);
        let b = content(&FILES[2]);
        assert_ne!(a[..], b[..4096]);
        assert_eq!(content(&FILES[3]), content(&FILES[3]));
    }

    #[test]
    fn tar_header_fields() {
        let image = tar(&[("hello.txt", b"Hello, world\n")]).unwrap();
        assert_eq!(image.len(), 4 * BLOCK);
        let h = &image[..BLOCK];
        assert_eq!(&h[..10], b"hello.txt\0");
        assert_eq!(&h[124..136], b"00000000015\0");
        assert_eq!(h[156], b'0');
        assert_eq!(&h[257..263], b"ustar\0");
        // The stored checksum is the sum with the field read as spaces.
        let stored = u32::from_str_radix(std::str::from_utf8(&h[148..154]).unwrap(), 8).unwrap();
        let mut copy = h.to_vec();
        copy[148..156].copy_from_slice(b"        ");
        assert_eq!(stored, copy.iter().map(|&b| u32::from(b)).sum::<u32>());
        assert_eq!(&image[BLOCK..BLOCK + 13], b"Hello, world\n");
        assert!(image[BLOCK + 13..].iter().all(|&b| b == 0));
    }

    #[test]
    fn tar_refuses_bad_names() {
        assert_eq!(tar(&[("", b"")]), Err(TarError::Name(String::new())));
        let long = "x".repeat(100);
        assert_eq!(tar(&[(&long, b"")]), Err(TarError::Name(long.clone())));
    }

    #[test]
    fn gnu_tar_reads_the_image() {
        // The image must unpack with an ordinary tar (busybox's in the
        // Linux guests, and what the Ringlet httpd parses is the same format).
        let dir = std::env::temp_dir().join(format!("ringlet-benchxen-tar-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let img = dir.join("site.tar");
        std::fs::write(&img, image().unwrap()).unwrap();
        let status = std::process::Command::new("tar")
            .arg("-xf")
            .arg(&img)
            .arg("-C")
            .arg(&dir)
            .status()
            .expect("tar runs");
        assert!(status.success());
        for f in &FILES {
            assert_eq!(
                std::fs::read(dir.join(f.name)).unwrap(),
                content(f),
                "{}",
                f.name
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
