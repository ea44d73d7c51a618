//! Whether two builds of one image are the same, and where not: given each
//! build's manifest, config and layers for a platform, the verdict on the
//! manifest digests and, when they differ, the layers that differ (with the
//! history entry that made each), the files inside them that differ (added,
//! removed, content, or metadata: mode, owner, mtime, size, link), and the
//! config fields that differ, the way diffoci reports. Layers are read from
//! their tar streams; nothing here starts a process.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// One platform of one build, as its OCI layout has it.
#[derive(Debug, Clone)]
pub struct PlatformImage {
    /// The manifest's digest: what is compared.
    pub manifest: String,
    pub manifest_json: Value,
    pub config: Value,
    /// The manifest's layer digests, in order.
    pub layers: Vec<String>,
}

impl PlatformImage {
    /// Each layer's `created_by`: the history entries that made a layer, in order.
    pub fn created_by(&self) -> Vec<String> {
        self.config["history"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|h| h["empty_layer"] != true)
            .map(|h| h["created_by"].as_str().unwrap_or("").to_string())
            .collect()
    }

    fn diff_ids(&self) -> Vec<String> {
        self.config["rootfs"]["diff_ids"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| d.as_str().unwrap_or("").to_string())
            .collect()
    }
}

/// One tar entry, as far as a rebuild can change it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub path: String,
    /// `file`, `dir`, `symlink`, `hardlink`, `char`, `block`, `fifo`, …
    pub kind: String,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub size: u64,
    /// sha256 of the content (regular files).
    pub sha256: Option<String>,
    pub link: Option<String>,
}

/// The entries of a layer's (uncompressed) tar stream, by path.
pub fn read_entries(reader: impl Read) -> Result<BTreeMap<String, Entry>> {
    let mut archive = tar::Archive::new(reader);
    let mut out = BTreeMap::new();
    for entry in archive.entries().context("reading the layer as tar")? {
        let mut entry = entry.context("reading a layer entry")?;
        let header = entry.header().clone();
        let path = entry.path().context("a layer entry's path")?.to_string_lossy().trim_start_matches("./").to_string();
        let kind = header.entry_type();
        let kind_name = match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => "file",
            tar::EntryType::Directory => "dir",
            tar::EntryType::Symlink => "symlink",
            tar::EntryType::Link => "hardlink",
            tar::EntryType::Char => "char",
            tar::EntryType::Block => "block",
            tar::EntryType::Fifo => "fifo",
            _ => "other",
        };
        let sha256 = if kind_name == "file" {
            let mut hasher = Sha256::new();
            std::io::copy(&mut entry, &mut hasher).with_context(|| format!("reading {path} in a layer"))?;
            Some(format!("{:x}", hasher.finalize()))
        } else {
            None
        };
        let link = entry.link_name().ok().flatten().map(|l| l.to_string_lossy().into_owned());
        out.insert(
            path.clone(),
            Entry {
                path,
                kind: kind_name.to_string(),
                mode: header.mode().unwrap_or(0),
                uid: header.uid().unwrap_or(0),
                gid: header.gid().unwrap_or(0),
                mtime: header.mtime().unwrap_or(0),
                size: header.size().unwrap_or(0),
                sha256,
                link,
            },
        );
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Only in the second build.
    Added,
    /// Only in the first build.
    Removed,
    /// The content (or type, or link target) differs.
    Content,
    /// Same content; mode, owner, mtime differ.
    Metadata,
}

/// A file that differs between the two builds' layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileDiff {
    pub path: String,
    pub change: Change,
    /// What differs: `mtime 1700000000 != 1700000042`, `content sha256 ab… != cd…`.
    pub details: Vec<String>,
}

/// The files that differ between two layers' entries.
pub fn diff_entries(a: &BTreeMap<String, Entry>, b: &BTreeMap<String, Entry>) -> Vec<FileDiff> {
    let mut out = Vec::new();
    for (path, ea) in a {
        let Some(eb) = b.get(path) else {
            out.push(FileDiff { path: path.clone(), change: Change::Removed, details: vec!["only in build 1".into()] });
            continue;
        };
        let mut content = Vec::new();
        let mut meta = Vec::new();
        let field = |list: &mut Vec<String>, name: &str, x: String, y: String| {
            if x != y {
                list.push(format!("{name} {x} != {y}"));
            }
        };
        field(&mut content, "type", ea.kind.clone(), eb.kind.clone());
        field(&mut content, "size", ea.size.to_string(), eb.size.to_string());
        let short = |s: &Option<String>| s.as_deref().map(|s| s[..s.len().min(12)].to_string()).unwrap_or_default();
        if ea.sha256 != eb.sha256 {
            content.push(format!("content sha256 {} != {}", short(&ea.sha256), short(&eb.sha256)));
        }
        field(&mut content, "link", ea.link.clone().unwrap_or_default(), eb.link.clone().unwrap_or_default());
        field(&mut meta, "mode", format!("{:o}", ea.mode), format!("{:o}", eb.mode));
        field(&mut meta, "uid/gid", format!("{}:{}", ea.uid, ea.gid), format!("{}:{}", eb.uid, eb.gid));
        field(&mut meta, "mtime", ea.mtime.to_string(), eb.mtime.to_string());
        if !content.is_empty() {
            content.extend(meta);
            out.push(FileDiff { path: path.clone(), change: Change::Content, details: content });
        } else if !meta.is_empty() {
            out.push(FileDiff { path: path.clone(), change: Change::Metadata, details: meta });
        }
    }
    for path in b.keys().filter(|p| !a.contains_key(*p)) {
        out.push(FileDiff { path: path.clone(), change: Change::Added, details: vec!["only in build 2".into()] });
    }
    out.sort_by(|x, y| x.path.cmp(&y.path));
    out
}

/// One layer index, compared.
#[derive(Debug, Clone, Serialize)]
pub struct LayerVerdict {
    pub index: usize,
    pub same: bool,
    /// The layer's digest in each build (`None`: the build has no such layer).
    pub digest_1: Option<String>,
    pub digest_2: Option<String>,
    pub diff_id_1: Option<String>,
    pub diff_id_2: Option<String>,
    /// The history entry that made the layer (build 1's, else build 2's).
    pub created_by: String,
    /// The files that differ (empty when the layer is the same).
    pub files: Vec<FileDiff>,
}

/// One platform of one image, compared.
#[derive(Debug, Clone, Serialize)]
pub struct PlatformVerdict {
    pub platform: String,
    pub digest_1: String,
    pub digest_2: String,
    pub same: bool,
    /// Every layer when the manifests differ; none when they are the same.
    pub layers: Vec<LayerVerdict>,
    /// Config fields that differ (`created: "…" != "…"`), the layer list left out.
    pub config: Vec<String>,
    /// Manifest annotations that differ.
    pub annotations: Vec<String>,
}

impl PlatformVerdict {
    pub fn differing_layers(&self) -> impl Iterator<Item = &LayerVerdict> {
        self.layers.iter().filter(|l| !l.same)
    }
}

/// Compares one platform of two builds. `layer_files(index)` reads and
/// diffs the files of a layer whose digests differ.
pub fn compare(
    platform: &str,
    a: &PlatformImage,
    b: &PlatformImage,
    mut layer_files: impl FnMut(usize) -> Result<Vec<FileDiff>>,
) -> Result<PlatformVerdict> {
    let mut verdict = PlatformVerdict {
        platform: platform.to_string(),
        digest_1: a.manifest.clone(),
        digest_2: b.manifest.clone(),
        same: a.manifest == b.manifest,
        layers: Vec::new(),
        config: Vec::new(),
        annotations: Vec::new(),
    };
    if verdict.same {
        return Ok(verdict);
    }
    let (ids_a, ids_b) = (a.diff_ids(), b.diff_ids());
    let (by_a, by_b) = (a.created_by(), b.created_by());
    for index in 0..a.layers.len().max(b.layers.len()) {
        let (da, db) = (a.layers.get(index).cloned(), b.layers.get(index).cloned());
        let (ia, ib) = (ids_a.get(index).cloned(), ids_b.get(index).cloned());
        let same = da.is_some() && da == db && ia == ib;
        let files = if !same && da.is_some() && db.is_some() { layer_files(index)? } else { Vec::new() };
        let created_by = by_a.get(index).or(by_b.get(index)).cloned().unwrap_or_default();
        verdict.layers.push(LayerVerdict {
            index,
            same,
            digest_1: da,
            digest_2: db,
            diff_id_1: ia,
            diff_id_2: ib,
            created_by,
            files,
        });
    }
    let strip = |c: &Value| {
        let mut c = c.clone();
        if let Some(o) = c.as_object_mut() {
            o.remove("rootfs");
        }
        c
    };
    json_diff("", &strip(&a.config), &strip(&b.config), &mut verdict.config);
    json_diff("", &a.manifest_json["annotations"], &b.manifest_json["annotations"], &mut verdict.annotations);
    Ok(verdict)
}

/// The leaves that differ between two JSON values, as `path: a != b`.
pub fn json_diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    let child = |key: &str| if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                json_diff(&child(k), x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null), out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                json_diff(&format!("{path}[{i}]"), p, q, out);
            }
        }
        _ if a != b => out.push(format!("{}: {a} != {b}", if path.is_empty() { "(root)" } else { path })),
        _ => {}
    }
}

/// One image built twice and compared: `image repro`, and the `repro` row of `image check`.
#[derive(Debug, Clone, Serialize)]
pub struct ImageRepro {
    pub image: String,
    /// The layout `image build` wrote with no step cached, taken as build 1.
    pub reused_build: Option<PathBuf>,
    /// The two layouts, when kept (`--layouts`).
    pub layouts: Option<[PathBuf; 2]>,
    pub platforms: Vec<PlatformVerdict>,
    pub seconds: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct File<'a> {
        path: &'a str,
        body: &'a [u8],
        mode: u32,
        mtime: u64,
        uid: u64,
    }

    fn file(path: &'static str, body: &'static [u8]) -> File<'static> {
        File { path, body, mode: 0o644, mtime: 1_700_000_000, uid: 0 }
    }

    fn layer(files: &[File<'_>]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for f in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(f.body.len() as u64);
            h.set_mode(f.mode);
            h.set_mtime(f.mtime);
            h.set_uid(f.uid);
            h.set_gid(0);
            h.set_entry_type(tar::EntryType::Regular);
            builder.append_data(&mut h, f.path, f.body).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn diff(a: &[File<'_>], b: &[File<'_>]) -> Vec<FileDiff> {
        diff_entries(&read_entries(&layer(a)[..]).unwrap(), &read_entries(&layer(b)[..]).unwrap())
    }

    #[test]
    fn identical_layers_have_no_differences() {
        let files = [file("etc/a", b"a"), file("bin/b", b"bb")];
        assert_eq!(diff(&files, &files), vec![]);
    }

    #[test]
    fn a_planted_timestamp_is_a_content_difference_of_that_file_only() {
        let a = [file("etc/a", b"a"), file("etc/built-at", b"1700000000123\n")];
        let b = [file("etc/a", b"a"), file("etc/built-at", b"1700000042456\n")];
        let d = diff(&a, &b);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].path, "etc/built-at");
        assert_eq!(d[0].change, Change::Content);
        assert!(d[0].details[0].starts_with("content sha256 "), "{:?}", d[0].details);
    }

    #[test]
    fn metadata_added_and_removed_files_are_told_apart() {
        let a = [
            File { mtime: 1, ..file("etc/mtime", b"x") },
            File { mode: 0o755, ..file("etc/mode", b"x") },
            File { uid: 1000, ..file("etc/owner", b"x") },
            file("etc/gone", b"x"),
        ];
        let b = [
            File { mtime: 2, ..file("etc/mtime", b"x") },
            file("etc/mode", b"x"),
            file("etc/owner", b"x"),
            file("etc/new", b"x"),
        ];
        let d: Vec<(String, Change, Vec<String>)> =
            diff(&a, &b).into_iter().map(|f| (f.path, f.change, f.details)).collect();
        assert_eq!(
            d,
            vec![
                ("etc/gone".into(), Change::Removed, vec!["only in build 1".into()]),
                ("etc/mode".into(), Change::Metadata, vec!["mode 755 != 644".into()]),
                ("etc/mtime".into(), Change::Metadata, vec!["mtime 1 != 2".into()]),
                ("etc/new".into(), Change::Added, vec!["only in build 2".into()]),
                ("etc/owner".into(), Change::Metadata, vec!["uid/gid 1000:0 != 0:0".into()]),
            ]
        );
    }

    #[test]
    fn a_size_change_is_a_content_change() {
        let d = diff(&[file("f", b"x")], &[file("f", b"xy")]);
        assert_eq!(d[0].change, Change::Content);
        assert_eq!(d[0].details[0], "size 1 != 2");
    }

    fn image(manifest: &str, layers: &[&str], created: &str) -> PlatformImage {
        PlatformImage {
            manifest: manifest.into(),
            manifest_json: json!({}),
            config: json!({
                "created": created,
                "rootfs": {"type": "layers", "diff_ids": layers},
                "history": [
                    {"created_by": "COPY busybox /bin/busybox # buildkit"},
                    {"created_by": "ARG X", "empty_layer": true},
                    {"created_by": "RUN date +%s%N > /etc/built-at # buildkit"},
                    {"created_by": "COPY late.txt /etc/late.txt # buildkit"},
                ],
            }),
            layers: layers.iter().map(|l| l.to_string()).collect(),
        }
    }

    #[test]
    fn the_differing_layer_is_named_with_its_instruction_and_files() {
        let a = image("sha256:m1", &["sha256:l0", "sha256:l1a", "sha256:l2"], "2023-11-14T22:13:20Z");
        let b = image("sha256:m2", &["sha256:l0", "sha256:l1b", "sha256:l2"], "2023-11-14T22:13:20Z");
        let mut asked = Vec::new();
        let v = compare("linux/amd64", &a, &b, |i| {
            asked.push(i);
            Ok(vec![FileDiff { path: "etc/built-at".into(), change: Change::Content, details: vec![] }])
        })
        .unwrap();
        assert!(!v.same);
        assert_eq!(asked, vec![1], "only the differing layer is read");
        let differing: Vec<usize> = v.differing_layers().map(|l| l.index).collect();
        assert_eq!(differing, vec![1]);
        assert_eq!(v.layers[1].created_by, "RUN date +%s%N > /etc/built-at # buildkit");
        assert_eq!(v.layers[1].files[0].path, "etc/built-at");
        assert!(v.layers[0].same && v.layers[2].same && v.layers[0].files.is_empty());
        assert_eq!(v.config, Vec::<String>::new(), "rootfs is left to the layers");
    }

    #[test]
    fn equal_manifests_are_the_same_and_nothing_is_read() {
        let a = image("sha256:m1", &["sha256:l0"], "x");
        let v = compare("linux/amd64", &a, &a.clone(), |_| panic!("no layer is read")).unwrap();
        assert!(v.same && v.layers.is_empty());
    }

    #[test]
    fn config_differences_are_listed_by_field() {
        let a = image("sha256:m1", &["sha256:l0"], "2023-11-14T22:13:20Z");
        let b = image("sha256:m2", &["sha256:l0"], "2026-12-06T00:00:00Z");
        let v = compare("linux/amd64", &a, &b, |_| panic!("the layers are the same")).unwrap();
        assert!(!v.same);
        assert_eq!(v.differing_layers().count(), 0);
        assert_eq!(v.config, vec![r#"created: "2023-11-14T22:13:20Z" != "2026-12-06T00:00:00Z""#.to_string()]);
    }
}
