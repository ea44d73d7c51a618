//! Reproducible layers: the files' times in every layer of an OCI layout
//! clamped to the commit's (`SOURCE_DATE_EPOCH`), as BuildKit's
//! `rewrite-timestamp` does, but paid once per layer instead of on every
//! export. BuildKit 0.13 recompresses every layer of every export with
//! `rewrite-timestamp` (about 20 s a platform for the worker stand-in even
//! when every step is cached, and each new label is a new export); here a
//! layer is read once for its latest time (`target/oci/.clamp/HEX.latest`,
//! whatever the epoch: a layer from the cache of an earlier commit is then
//! kept without being read again), rewritten only the first time it is seen
//! with a time past the epoch, and a record (`HEX@EPOCH`) names what it
//! became, so an unchanged or relabelled build reuses the blob it holds.
//!
//! A layer is a tar stream (gzip or plain); its entries are copied as they
//! are, with each header's mtime (and a PAX record's `mtime`, `atime`,
//! `ctime`) past the epoch set to the epoch, and the gzip written by
//! flate2 with no name and no time in its header. A layer with no time at
//! or past the epoch (a base image's) keeps its blob. Then each image's config
//! (`rootfs.diff_ids`), manifest and index are written anew.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use sha2::Digest as _;

use super::oci::Layout;

/// What a clamp did to a layout.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Clamped {
    /// Layers rewritten now.
    pub rewritten: usize,
    /// Layers whose rewrite a record named (their blob already at hand).
    pub reused: usize,
    /// Layers with no time past the epoch, kept as they are.
    pub kept: usize,
}

/// Where the clamp records of the layouts beside `layout_dir` live
/// (`target/oci/.clamp`): shared by every image and platform set.
fn records_dir(layout_dir: &Path) -> PathBuf {
    layout_dir.with_file_name(".clamp")
}

/// Clamps every image of `layout` to `epoch`, rewriting what it must, and
/// points `index.json` at the result. The records of what each layer blob
/// became live beside `home`, the image's own layout dir; `also` are other
/// layouts whose blobs a record may name (the image's own layout, for a
/// publish layout of one platform). Refuses a layout with attestations:
/// they name the digests they attest.
pub fn layout(layout: &Layout, epoch: u64, home: &Path, also: &[&Path]) -> Result<Clamped> {
    let records = &records_dir(home);
    let top = layout.json(&layout.dir.join("index.json"))?;
    let mut manifests = Vec::new();
    images(layout, &top, 0, &mut manifests)?;
    let mut layers: BTreeMap<String, Value> = BTreeMap::new();
    for digest in &manifests {
        let manifest = layout.json(&layout.blob_path(digest)?)?;
        for desc in manifest["layers"].as_array().into_iter().flatten() {
            let d = desc["digest"].as_str().context("a layer without a digest")?;
            layers.insert(d.to_string(), desc.clone());
        }
    }
    std::fs::create_dir_all(records).with_context(|| format!("creating {}", records.display()))?;
    // One thread per layer, as `image size` reads them.
    let done: Vec<(String, Result<Layer>)> = std::thread::scope(|s| {
        let handles: Vec<_> = layers
            .iter()
            .map(|(d, desc)| (d.clone(), s.spawn(move || layer(layout, desc, epoch, records, also))))
            .collect();
        handles
            .into_iter()
            .map(|(d, h)| (d, h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("the clamp of a layer panicked")))))
            .collect()
    });
    let mut out = Clamped::default();
    let mut by_digest = BTreeMap::new();
    for (digest, result) in done {
        let l = result.with_context(|| format!("clamping the files' times of layer {digest}"))?;
        match l.how {
            How::Rewritten => out.rewritten += 1,
            How::Reused => out.reused += 1,
            How::Kept => out.kept += 1,
        }
        by_digest.insert(digest, l);
    }
    let mut top = top;
    if rewrite_index(layout, &mut top, 0, &by_digest)? {
        write_atomic(&layout.dir.join("index.json"), &serde_json::to_vec(&top)?)?;
    }
    Ok(out)
}

/// The image manifests `index` reaches (through nested indexes).
fn images(layout: &Layout, index: &Value, depth: usize, out: &mut Vec<String>) -> Result<()> {
    for desc in index["manifests"].as_array().into_iter().flatten() {
        if desc["annotations"].get("vnd.docker.reference.type").is_some() {
            bail!(
                "the layout {} holds attestations, which name the digests they attest: \
                 build without --provenance/--sbom for a reproducible image",
                layout.dir.display()
            );
        }
        let digest = desc["digest"].as_str().context("a descriptor without a digest")?;
        if is_index(desc) && depth < 4 {
            images(layout, &layout.json(&layout.blob_path(digest)?)?, depth + 1, out)?;
        } else {
            out.push(digest.to_string());
        }
    }
    Ok(())
}

fn is_index(desc: &Value) -> bool {
    desc["mediaType"].as_str().is_some_and(|m| m.contains("image.index") || m.contains("manifest.list"))
}

/// Points each descriptor of `index` at its clamped blob, writing nested
/// indexes, manifests and configs anew where a layer changed.
/// Returns whether anything under `index` changed (an unchanged index keeps its blob).
fn rewrite_index(layout: &Layout, index: &mut Value, depth: usize, layers: &BTreeMap<String, Layer>) -> Result<bool> {
    let mut any = false;
    for desc in index["manifests"].as_array_mut().into_iter().flatten() {
        let digest = desc["digest"].as_str().context("a descriptor without a digest")?.to_string();
        let mut node = layout.json(&layout.blob_path(&digest)?)?;
        let changed = if is_index(desc) && depth < 4 {
            rewrite_index(layout, &mut node, depth + 1, layers)?
        } else {
            rewrite_manifest(layout, &mut node, layers)?
        };
        if changed {
            let (d, size) = write_blob(layout, &serde_json::to_vec(&node)?)?;
            desc["digest"] = d.into();
            desc["size"] = size.into();
            any = true;
        }
    }
    Ok(any)
}

/// Points the manifest's layers at their clamped blobs and its config at
/// one with their diff IDs; false when no layer changed.
fn rewrite_manifest(layout: &Layout, manifest: &mut Value, layers: &BTreeMap<String, Layer>) -> Result<bool> {
    let config_digest = manifest["config"]["digest"].as_str().context("a manifest without a config")?;
    let mut config = layout.json(&layout.blob_path(config_digest)?)?;
    let mut changed = false;
    for (i, desc) in manifest["layers"].as_array_mut().into_iter().flatten().enumerate() {
        let l = &layers[desc["digest"].as_str().unwrap_or_default()];
        if let Some(new) = &l.new {
            desc["digest"] = new.digest.clone().into();
            desc["size"] = new.size.into();
            let ids = config["rootfs"]["diff_ids"].as_array_mut().context("a config without rootfs.diff_ids")?;
            *ids.get_mut(i).context("a config with fewer diff IDs than layers")? = new.diff_id.clone().into();
            changed = true;
        }
    }
    if changed {
        let (d, size) = write_blob(layout, &serde_json::to_vec(&config)?)?;
        manifest["config"]["digest"] = d.into();
        manifest["config"]["size"] = size.into();
    }
    Ok(changed)
}

/// A layer blob written as `bytes`' content address; its digest and size.
fn write_blob(layout: &Layout, bytes: &[u8]) -> Result<(String, u64)> {
    let digest = format!("sha256:{:x}", sha2::Sha256::digest(bytes));
    let path = layout.blob_path(&digest)?;
    if !path.is_file() {
        write_atomic(&path, bytes)?;
    }
    Ok((digest, bytes.len() as u64))
}

/// Writes `path` whole or not at all, through a temporary file of its own
/// (builds of one image for two platform sets share the records).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("a path without a directory")?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).with_context(|| format!("writing in {}", dir.display()))?;
    tmp.write_all(bytes).with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// A layer's clamped blob.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NewBlob {
    digest: String,
    size: u64,
    diff_id: String,
}

#[derive(Debug)]
enum How {
    Rewritten,
    Reused,
    Kept,
}

#[derive(Debug)]
struct Layer {
    /// None: kept as it is.
    new: Option<NewBlob>,
    how: How,
}

/// Where the blob `digest` is at hand: in `own` (the layout, the layouts it
/// may take from), else in any layout beside the records (`target/oci/*`:
/// the image's layout for another platform set, or those a rehearsal's
/// clone was seeded with).
fn find_blob(own: &[&Path], records: &Path, digest: &str) -> Option<PathBuf> {
    let hex = digest.trim_start_matches("sha256:");
    let beside = records.parent().and_then(|root| std::fs::read_dir(root).ok()).into_iter().flatten();
    let beside = beside.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.as_path() != records);
    own.iter()
        .map(|d| d.to_path_buf())
        .chain(beside)
        .map(|dir| dir.join("blobs/sha256").join(hex))
        .find(|p| p.is_file())
}

/// The record of what the blob `digest` becomes at `epoch`: `DIGEST SIZE DIFF_ID`.
fn record_path(records: &Path, digest: &str, epoch: u64) -> PathBuf {
    records.join(format!("{}@{epoch}", digest.trim_start_matches("sha256:")))
}

fn read_record(path: &Path) -> Option<NewBlob> {
    let text = std::fs::read_to_string(path).ok()?;
    match text.split_whitespace().collect::<Vec<_>>().as_slice() {
        [digest, size, diff_id] => {
            Some(NewBlob { digest: digest.to_string(), size: size.parse().ok()?, diff_id: diff_id.to_string() })
        }
        _ => None,
    }
}

fn layer(layout: &Layout, desc: &Value, epoch: u64, records: &Path, also: &[&Path]) -> Result<Layer> {
    let digest = desc["digest"].as_str().context("a layer without a digest")?;
    let media = desc["mediaType"].as_str().unwrap_or_default();
    let gzip = if media.ends_with("tar+gzip") || media.ends_with("tar.gzip") {
        true
    } else if media.ends_with(".tar") || media.ends_with("tar") {
        false
    } else {
        bail!(
            "layer {digest} is {media}: only gzip and plain tar layers can have their times clamped; build with gzip"
        );
    };
    let open = || -> Result<Box<dyn Read>> {
        let src = std::fs::File::open(layout.blob_path(digest)?).with_context(|| format!("layer {digest} missing"))?;
        let src = std::io::BufReader::with_capacity(1 << 20, src);
        Ok(if gzip { Box::new(flate2::read::GzDecoder::new(src)) } else { Box::new(src) })
    };
    // Its latest time, whatever the epoch: most layers of a build from
    // the cache were made before this commit and are kept as they are.
    let latest_record = records.join(format!("{}.latest", digest.trim_start_matches("sha256:")));
    let latest = match std::fs::read_to_string(&latest_record).ok().and_then(|t| t.trim().parse::<u64>().ok()) {
        Some(t) => t,
        None => {
            let t = latest_time(open()?)?;
            write_atomic(&latest_record, t.to_string().as_bytes())?;
            t
        }
    };
    // Kept only when no time reaches the epoch: a time at the epoch is
    // this build's (a layer that one build makes in the epoch's second and
    // the other later must come out as one blob, so both are rewritten).
    if latest < epoch {
        return Ok(Layer { new: None, how: How::Kept });
    }
    let record = record_path(records, digest, epoch);
    if let Some(new) = read_record(&record) {
        let dest = layout.blob_path(&new.digest)?;
        let own: Vec<&Path> = std::iter::once(layout.dir.as_path()).chain(also.iter().copied()).collect();
        let found = find_blob(&own, records, &new.digest);
        // Linked (else copied) from where it is; when that fails (another
        // build just collected it), it is rewritten again below.
        let at_hand = found.is_some_and(|found| {
            found == dest
                || dest.is_file()
                || std::fs::hard_link(&found, &dest).or_else(|_| std::fs::copy(&found, &dest).map(|_| ())).is_ok()
        });
        if at_hand {
            return Ok(Layer { new: Some(new), how: How::Reused });
        }
    }
    let tmp = tempfile::NamedTempFile::new_in(layout.dir.join("blobs/sha256")).context("creating a layer file")?;
    let file = Hashing::new(std::io::BufWriter::with_capacity(1 << 20, tmp.as_file()));
    let (uncompressed, file) = if gzip {
        let gz = flate2::GzBuilder::new().write(file, flate2::Compression::default());
        let mut tee = Hashing::new(Chunked::new(gz));
        clamp_tar(open()?, &mut tee, epoch)?;
        let (chunked, diff_id, _) = tee.into_parts();
        (diff_id, chunked.finish()?.finish().context("compressing the layer")?)
    } else {
        let mut file = file;
        clamp_tar(open()?, &mut file, epoch)?;
        let digest = file.digest();
        (digest, file)
    };
    let (mut inner, blob_digest, size) = file.into_parts();
    inner.flush().context("writing the layer")?;
    drop(inner);
    let new = NewBlob { digest: blob_digest, size, diff_id: uncompressed };
    tmp.persist(layout.blob_path(&new.digest)?).context("storing the rewritten layer")?;
    write_atomic(&record, format!("{} {} {}", new.digest, new.size, new.diff_id).as_bytes())?;
    Ok(Layer { new: Some(new), how: How::Rewritten })
}

/// A writer that hands its inner writer the same chunks whatever the
/// writes it is given: the deflate stream depends on how its input is cut,
/// and the tar stream comes in pieces cut by the decompression of a blob
/// that differs from build to build.
pub struct Chunked<W: Write> {
    inner: W,
    buf: Vec<u8>,
}

const CHUNK: usize = 1 << 18;

impl<W: Write> Chunked<W> {
    pub fn new(inner: W) -> Self {
        Chunked { inner, buf: Vec::with_capacity(CHUNK) }
    }
    pub fn finish(mut self) -> Result<W> {
        self.inner.write_all(&self.buf).context("compressing the layer")?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for Chunked<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&buf[..n]);
        if self.buf.len() == CHUNK {
            self.inner.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(n)
    }
    /// Only `finish` hands on a partial chunk: a flush would cut the stream where the writes fell.
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A writer that hashes (sha256) and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hash: sha2::Sha256,
    len: u64,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing { inner, hash: sha2::Sha256::new(), len: 0 }
    }
    fn digest(&self) -> String {
        format!("sha256:{:x}", self.hash.clone().finalize())
    }
    /// The inner writer, the sha256 and the count of what passed through.
    fn into_parts(self) -> (W, String, u64) {
        let d = self.digest();
        (self.inner, d, self.len)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Copies the tar stream `input` to `output` entry by entry, each time past
/// `epoch` set to `epoch`: the header's mtime and a PAX header's `mtime`,
/// `atime` and `ctime` records. Returns whether any time changed.
pub fn clamp_tar(input: impl Read, output: impl Write, epoch: u64) -> Result<bool> {
    let mut archive = tar::Archive::new(input);
    let mut builder = tar::Builder::new(output);
    let mut changed = false;
    for entry in archive.entries().context("reading the layer's tar stream")?.raw(true) {
        let mut entry = entry.context("reading the layer's tar stream")?;
        let mut header = entry.header().clone();
        if header.mtime().context("a tar header with an unreadable mtime")? > epoch {
            header.set_mtime(epoch);
            changed = true;
        }
        if matches!(header.entry_type(), tar::EntryType::XHeader | tar::EntryType::XGlobalHeader) {
            let mut records = Vec::new();
            entry.read_to_end(&mut records).context("reading a PAX header")?;
            let (records, pax_changed) = clamp_pax(&records, epoch)?;
            changed |= pax_changed;
            header.set_size(records.len() as u64);
            header.set_cksum();
            builder.append(&header, records.as_slice()).context("writing a PAX header")?;
        } else {
            header.set_cksum();
            builder.append(&header, &mut entry).context("writing the layer's tar stream")?;
        }
    }
    builder.into_inner().context("finishing the layer's tar stream")?;
    Ok(changed)
}

/// The latest time in the tar stream `input`: of its headers' mtimes and
/// its PAX records' times (a fraction rounded up).
pub fn latest_time(input: impl Read) -> Result<u64> {
    let mut archive = tar::Archive::new(input);
    let mut latest = 0;
    for entry in archive.entries().context("reading the layer's tar stream")?.raw(true) {
        let mut entry = entry.context("reading the layer's tar stream")?;
        latest = latest.max(entry.header().mtime().context("a tar header with an unreadable mtime")?);
        if matches!(entry.header().entry_type(), tar::EntryType::XHeader | tar::EntryType::XGlobalHeader) {
            let mut records = Vec::new();
            entry.read_to_end(&mut records).context("reading a PAX header")?;
            for (key, value) in pax_records(&records)? {
                if matches!(key, b"mtime" | b"atime" | b"ctime") {
                    latest = latest.max(pax_time(value).map_or(0, |(t, fraction)| t + u64::from(fraction)));
                }
            }
        }
    }
    Ok(latest)
}

/// A PAX time's whole seconds, and whether it has a fraction.
fn pax_time(value: &[u8]) -> Option<(u64, bool)> {
    let text = std::str::from_utf8(value).ok()?;
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    Some((whole.parse().ok()?, fraction.bytes().any(|b| b != b'0')))
}

/// PAX records (`LEN KEY=VALUE\n`): each key and value.
fn pax_records(data: &[u8]) -> Result<Vec<(&[u8], &[u8])>> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let space = rest.iter().position(|&b| b == b' ').context("a PAX record without a length")?;
        let len: usize = std::str::from_utf8(&rest[..space])?.parse().context("a PAX record's length")?;
        if len <= space + 1 || len > rest.len() {
            bail!("a PAX record's length {len} does not fit its header");
        }
        let record = &rest[space + 1..len - 1];
        rest = &rest[len..];
        match record.iter().position(|&b| b == b'=') {
            Some(eq) => out.push((&record[..eq], &record[eq + 1..])),
            None => bail!("a PAX record without `=`"),
        }
    }
    Ok(out)
}

/// PAX records (`LEN KEY=VALUE\n`) with the times past `epoch` set to it.
fn clamp_pax(data: &[u8], epoch: u64) -> Result<(Vec<u8>, bool)> {
    let mut out = Vec::with_capacity(data.len());
    let mut changed = false;
    for (key, value) in pax_records(data)? {
        let time = matches!(key, b"mtime" | b"atime" | b"ctime").then(|| pax_time(value)).flatten();
        match time {
            Some((t, fraction)) if t > epoch || (t == epoch && fraction) => {
                out.extend(pax_record(key, epoch.to_string().as_bytes()));
                changed = true;
            }
            _ => out.extend(pax_record(key, value)),
        }
    }
    Ok((out, changed))
}

/// One PAX record: its length counts its own digits.
fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // space, '=', newline
    let mut len = body + body.to_string().len();
    if len.to_string().len() != (len - body) {
        len += 1;
    }
    let mut out = format!("{len} ").into_bytes();
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar stream of `(name, mtime, content)` files, with a PAX header
    /// carrying `pax` records before the last one.
    fn tar_of(files: &[(&str, u64, &[u8])], pax: &[(&str, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (i, (name, mtime, content)) in files.iter().enumerate() {
            if i + 1 == files.len() && !pax.is_empty() {
                b.append_pax_extensions(pax.iter().map(|(k, v)| (*k, v.as_bytes()))).unwrap();
            }
            let mut h = tar::Header::new_ustar();
            h.set_path(name).unwrap();
            h.set_size(content.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(*mtime);
            h.set_cksum();
            b.append(&h, *content).unwrap();
        }
        b.into_inner().unwrap()
    }

    /// An entry's name, header mtime and PAX records.
    type Entry = (String, u64, Vec<(String, String)>);

    /// Each entry of `bytes`, read by the tar crate.
    fn read(bytes: &[u8]) -> Vec<Entry> {
        let mut a = tar::Archive::new(bytes);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let pax = e
                    .pax_extensions()
                    .unwrap()
                    .map(|p| {
                        p.into_iter()
                            .map(|x| {
                                let x = x.unwrap();
                                (x.key().unwrap().to_string(), x.value().unwrap().to_string())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let mut content = Vec::new();
                e.read_to_end(&mut content).unwrap();
                (e.path().unwrap().display().to_string(), e.header().mtime().unwrap(), pax)
            })
            .collect()
    }

    #[test]
    fn times_past_the_epoch_become_the_epoch_and_the_rest_stay() {
        let input = tar_of(&[("old", 100, b"a"), ("new", 5000, b"bb"), ("same", 1000, b"")], &[]);
        let mut out = Vec::new();
        assert!(clamp_tar(input.as_slice(), &mut out, 1000).unwrap());
        assert_eq!(
            read(&out).into_iter().map(|(n, t, _)| (n, t)).collect::<Vec<_>>(),
            [("old".into(), 100), ("new".into(), 1000), ("same".into(), 1000)]
        );
        // The contents are untouched.
        let mut a = tar::Archive::new(out.as_slice());
        let mut e = a.entries().unwrap().nth(1).unwrap().unwrap();
        let mut s = String::new();
        e.read_to_string(&mut s).unwrap();
        assert_eq!(s, "bb");
    }

    #[test]
    fn a_stream_with_nothing_past_the_epoch_is_unchanged_byte_for_byte() {
        let input = tar_of(&[("a", 1, b"x"), ("b", 2, b"y")], &[("path", "b")]);
        let mut out = Vec::new();
        assert!(!clamp_tar(input.as_slice(), &mut out, 10).unwrap());
        assert_eq!(out, input);
    }

    #[test]
    fn pax_times_are_clamped_and_the_record_lengths_kept_true() {
        let long = "d/".repeat(60) + "file";
        let input = tar_of(
            &[("a", 1, b"x"), ("b", 7, b"y")],
            &[("path", &long), ("mtime", "1765000000.123456789"), ("atime", "5"), ("SCHILY.xattr.user.k", "v")],
        );
        let mut out = Vec::new();
        assert!(clamp_tar(input.as_slice(), &mut out, 1000).unwrap());
        let entries = read(&out);
        assert_eq!(entries[1].0, long);
        assert_eq!(
            entries[1].2,
            [
                ("path".to_string(), long),
                ("mtime".into(), "1000".into()),
                ("atime".into(), "5".into()),
                ("SCHILY.xattr.user.k".into(), "v".into())
            ]
        );
    }

    #[test]
    fn the_latest_time_counts_headers_and_pax_records() {
        assert_eq!(latest_time(tar_of(&[("a", 5, b"x"), ("b", 9, b"y")], &[]).as_slice()).unwrap(), 9);
        let pax = tar_of(&[("a", 5, b"x"), ("b", 9, b"y")], &[("mtime", "12.5")]);
        assert_eq!(latest_time(pax.as_slice()).unwrap(), 13, "a fraction past 12 is later than 12");
        let pax = tar_of(&[("a", 5, b"x"), ("b", 9, b"y")], &[("ctime", "12.000")]);
        assert_eq!(latest_time(pax.as_slice()).unwrap(), 12);
        // What the clamp writes is never later than its epoch.
        let mut out = Vec::new();
        clamp_tar(tar_of(&[("a", 50, b"x")], &[("atime", "70.1")]).as_slice(), &mut out, 20).unwrap();
        assert_eq!(latest_time(out.as_slice()).unwrap(), 20);
    }

    /// `data` gzipped through [`Chunked`], written in pieces of `piece` bytes.
    fn gzip_in_pieces(data: &[u8], piece: usize) -> Vec<u8> {
        let gz = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::default());
        let mut w = Chunked::new(gz);
        for part in data.chunks(piece) {
            w.write_all(part).unwrap();
        }
        w.flush().unwrap();
        w.finish().unwrap().finish().unwrap()
    }

    #[test]
    fn the_gzip_stream_is_the_same_however_its_input_is_cut() {
        // Text that compresses, longer than a chunk and not a multiple of it.
        let data: Vec<u8> = (0..(3 * CHUNK + 12345)).map(|i| b"abcdefgh"[(i * 7 + i / 1000) % 8]).collect();
        let whole = gzip_in_pieces(&data, data.len());
        for piece in [1, 511, 512, 8192, 65536 + 3, CHUNK + 1] {
            let cut = gzip_in_pieces(&data, piece);
            assert!(
                cut == whole,
                "written {piece} bytes at a time: {} bytes of gzip against {}",
                cut.len(),
                whole.len()
            );
        }
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(whole.as_slice()).read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn a_pax_record_counts_its_own_length() {
        for value in ["", "1", "12345678", &"v".repeat(89), &"v".repeat(90), &"v".repeat(995)] {
            let r = pax_record(b"k", value.as_bytes());
            let len: usize =
                std::str::from_utf8(&r[..r.iter().position(|&b| b == b' ').unwrap()]).unwrap().parse().unwrap();
            assert_eq!(len, r.len(), "{value:?}");
        }
        assert!(clamp_pax(b"99 k=v\n", 1).is_err());
        assert!(clamp_pax(b"x k=v\n", 1).is_err());
    }

    #[test]
    fn a_rewritten_blob_is_found_in_the_layout_then_beside_it() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("oci");
        let records = root.join(".clamp");
        let (own, other) = (root.join("img@linux-amd64"), root.join("img"));
        for dir in [&records, &own.join("blobs/sha256"), &other.join("blobs/sha256")] {
            std::fs::create_dir_all(dir).unwrap();
        }
        assert_eq!(find_blob(&[own.as_path()], &records, "sha256:ab"), None);
        std::fs::write(other.join("blobs/sha256/ab"), "x").unwrap();
        assert_eq!(find_blob(&[own.as_path()], &records, "sha256:ab"), Some(other.join("blobs/sha256/ab")));
        std::fs::write(own.join("blobs/sha256/ab"), "x").unwrap();
        assert_eq!(find_blob(&[own.as_path()], &records, "sha256:ab"), Some(own.join("blobs/sha256/ab")));
    }

    #[test]
    fn a_record_is_read_back_or_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let p = record_path(tmp.path(), "sha256:ab", 7);
        assert_eq!(p.file_name().unwrap(), "ab@7");
        assert_eq!(read_record(&p), None);
        std::fs::write(&p, "sha256:c 12 sha256:d").unwrap();
        assert_eq!(read_record(&p), Some(NewBlob { digest: "sha256:c".into(), size: 12, diff_id: "sha256:d".into() }));
        std::fs::write(&p, "sha256:c twelve sha256:d").unwrap();
        assert_eq!(read_record(&p), None);
    }
}
