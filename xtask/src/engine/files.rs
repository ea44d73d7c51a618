//! Files of a container's filesystem, read through `docker cp CONTAINER:PATH -`
//! from a created (not necessarily started) container: kind, mode, owner,
//! link target and, when asked, the content of a regular file.

use std::io::Read;

use anyhow::{bail, Result};

use super::docker;

/// One path of a container's filesystem, as `docker cp` reports it (the
/// last component is not followed when it is a symlink).
#[derive(Debug, Clone, PartialEq)]
pub struct PathEntry {
    pub kind: EntryKind,
    /// Permission bits with setuid, setgid and sticky (`0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub link_target: Option<String>,
    /// The content of a regular file, when asked for.
    pub content: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
}

/// The most of a file the content checks read: they look at text, and a
/// larger file is an error, never a silently shortened read.
pub const MAX_CONTENT: u64 = 64 * 1024 * 1024;

/// Reads `path`: only the first tar entry, the path itself, so a large
/// directory costs nothing. `None` when the path doesn't exist.
pub fn read_path(container: &str, path: &str, with_content: bool) -> Result<Option<PathEntry>> {
    let mut reader = docker::docker().args(["cp", &format!("{container}:{path}"), "-"]).probe().reader()?;
    let first = {
        let mut archive = tar::Archive::new(&mut reader);
        match archive.entries().ok().and_then(|mut entries| entries.next()).and_then(|e| e.ok()) {
            Some(mut entry) => Some(entry_of(&mut entry, path, with_content)?),
            None => None,
        }
    };
    // What is left of a directory's stream is not needed.
    let err = reader.finish();
    match first {
        Some(entry) => Ok(Some(entry)),
        None if err.contains("Could not find the file") || err.contains("No such file") => Ok(None),
        None if err.trim().is_empty() => Ok(None),
        None => bail!("reading {path} from the container: {}", super::process::last_lines(&err, 1)),
    }
}

fn entry_of<R: Read>(entry: &mut tar::Entry<'_, R>, path: &str, with_content: bool) -> Result<PathEntry> {
    let header = entry.header();
    let kind = match header.entry_type() {
        tar::EntryType::Directory => EntryKind::Dir,
        tar::EntryType::Symlink => EntryKind::Symlink,
        tar::EntryType::Char => EntryKind::CharDevice,
        tar::EntryType::Block => EntryKind::BlockDevice,
        tar::EntryType::Fifo => EntryKind::Fifo,
        _ => EntryKind::File,
    };
    let mut found = PathEntry {
        kind,
        mode: header.mode().unwrap_or(0) & 0o7777,
        uid: header.uid().unwrap_or(0),
        gid: header.gid().unwrap_or(0),
        link_target: entry.link_name().ok().flatten().map(|p| p.to_string_lossy().into_owned()),
        content: None,
    };
    if with_content && kind == EntryKind::File {
        found.content = Some(read_limited(entry, MAX_CONTENT).map_err(|e| anyhow::anyhow!("{path}: {e}"))?);
    }
    Ok(found)
}

/// All of `reader`, or an error when it holds more than `limit` bytes.
pub fn read_limited(reader: impl Read, limit: u64) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    reader.take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        bail!(
            "the file is larger than {} MB, the most a file content test reads: test a smaller file, \
             or check this one with a command test (for example `grep`)",
            limit / (1024 * 1024)
        );
    }
    Ok(buf)
}

/// Go's `os.FileMode.String()` for a tar entry, as container-structure-test
/// compares `permissions`: type letters (`d`, `L`, `D`, `p`, then `u`, `g`,
/// `c`, `t`) or `-`, then `rwxrwxrwx`.
pub fn mode_string(kind: EntryKind, mode: u32) -> String {
    let mut out = String::new();
    let types = [
        ('d', kind == EntryKind::Dir),
        ('L', kind == EntryKind::Symlink),
        ('D', matches!(kind, EntryKind::CharDevice | EntryKind::BlockDevice)),
        ('p', kind == EntryKind::Fifo),
        ('u', mode & 0o4000 != 0),
        ('g', mode & 0o2000 != 0),
        ('c', kind == EntryKind::CharDevice),
        ('t', mode & 0o1000 != 0),
    ];
    for (letter, set) in types {
        if set {
            out.push(letter);
        }
    }
    if out.is_empty() {
        out.push('-');
    }
    for (i, c) in "rwxrwxrwx".chars().enumerate() {
        out.push(if mode & (1 << (8 - i)) != 0 { c } else { '-' });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_print_like_go_file_modes() {
        assert_eq!(mode_string(EntryKind::File, 0o755), "-rwxr-xr-x");
        assert_eq!(mode_string(EntryKind::Dir, 0o755), "drwxr-xr-x");
        assert_eq!(mode_string(EntryKind::Symlink, 0o777), "Lrwxrwxrwx");
        assert_eq!(mode_string(EntryKind::Dir, 0o1777), "dtrwxrwxrwx");
        assert_eq!(mode_string(EntryKind::File, 0o4755), "urwxr-xr-x");
        assert_eq!(mode_string(EntryKind::CharDevice, 0o666), "Dcrw-rw-rw-");
        assert_eq!(mode_string(EntryKind::File, 0o640), "-rw-r-----");
    }

    #[test]
    fn content_over_the_limit_is_an_error_not_a_shorter_read() {
        // Before: `take(64 MB)`, so a secret after the first 64 MB passed an excludedContents check.
        assert_eq!(read_limited(&b"0123456789"[..], 10).unwrap(), b"0123456789");
        let err = read_limited(&b"0123456789X"[..], 10).unwrap_err().to_string();
        assert!(err.starts_with("the file is larger than 0 MB"), "{err}");
        let big = std::io::repeat(b'a').take(MAX_CONTENT + 1);
        assert!(read_limited(big, MAX_CONTENT).unwrap_err().to_string().contains("larger than 64 MB"));
    }
}
