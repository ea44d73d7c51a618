//! What follows from the layers' file lists alone (pure, no I/O): the final
//! filesystem, dive's wasted bytes and efficiency, which history entry made
//! which layer.

use std::collections::{BTreeMap, HashMap};

/// The name prefix of an OCI whiteout: `.wh.NAME` deletes NAME below.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// An opaque whiteout: the directory holding it hides everything below it.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// Names dive never adds to its trees (the opaque marker is one of them).
const DOUBLE_WHITEOUT_PREFIX: &str = ".wh..wh..";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink(String),
    /// Points at another path of the archive (no leading slash).
    Hardlink(String),
    Other,
}

/// One entry of a layer tar: the metadata we keep, never the content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Normalized: `a/b/c`, no leading slash, no `.` or `..`.
    pub path: String,
    pub kind: Kind,
    /// The tar header's size (0 for directories, links and whiteouts).
    pub size: u64,
}

impl Entry {
    fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    fn parent(&self) -> &str {
        self.path.rsplit_once('/').map_or("", |(parent, _)| parent)
    }

    /// The path a whiteout deletes (`None` for other entries and the opaque marker).
    fn whiteout_target(&self) -> Option<String> {
        let name = self.name();
        let target = name.strip_prefix(WHITEOUT_PREFIX).filter(|_| name != OPAQUE_MARKER)?;
        Some(join(self.parent(), target))
    }

    /// The directory an opaque marker empties.
    fn opaque_dir(&self) -> Option<&str> {
        (self.name() == OPAQUE_MARKER).then(|| self.parent())
    }
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

pub use crate::checks::normalize_path;

/// A path of the final filesystem and the layer that put it there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalEntry {
    pub kind: Kind,
    pub size: u64,
    pub layer: usize,
}

pub type Filesystem = BTreeMap<String, FinalEntry>;

/// The filesystem a container of the image starts with: each layer's
/// whiteouts and opaque markers first delete from the layers below it, then
/// its entries are added (OCI image spec, "Applying changesets").
pub fn final_filesystem<L: AsRef<[Entry]>>(layers: &[L]) -> Filesystem {
    let mut fs = Filesystem::new();
    for (index, entries) in layers.iter().enumerate() {
        let entries = entries.as_ref();
        for entry in entries {
            if let Some(target) = entry.whiteout_target() {
                fs.remove(&target);
                remove_below(&mut fs, &target);
            } else if let Some(dir) = entry.opaque_dir() {
                remove_below(&mut fs, dir);
            }
        }
        for entry in entries.iter().filter(|e| !e.name().starts_with(WHITEOUT_PREFIX)) {
            if entry.kind != Kind::Dir {
                // A file replacing a directory hides what was in it.
                remove_below(&mut fs, &entry.path);
            }
            fs.insert(entry.path.clone(), FinalEntry { kind: entry.kind.clone(), size: entry.size, layer: index });
        }
    }
    fs
}

/// Removes everything inside `dir` ("" is the root).
fn remove_below(fs: &mut Filesystem, dir: &str) {
    let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
    let doomed: Vec<String> =
        fs.range(prefix.clone()..).map(|(k, _)| k).take_while(|k| k.starts_with(&prefix)).cloned().collect();
    for key in doomed {
        fs.remove(&key);
    }
}

/// The regular file `path` ends at, following symlinks inside the image's
/// filesystem (not the host's): its resolved path and size.
pub fn resolve_file(fs: &Filesystem, path: &str) -> Result<(String, u64), String> {
    let mut pending: Vec<String> = path.split('/').rev().map(String::from).collect();
    let mut resolved: Vec<String> = Vec::new();
    let mut links_followed = 0;
    while let Some(part) = pending.pop() {
        match part.as_str() {
            "" | "." => continue,
            ".." => {
                resolved.pop();
                continue;
            }
            _ => resolved.push(part),
        }
        let here = resolved.join("/");
        match fs.get(&here).map(|e| &e.kind) {
            None => return Err(format!("/{here} is not in the image")),
            Some(Kind::Symlink(target)) => {
                links_followed += 1;
                if links_followed > 40 {
                    return Err(format!("too many symlinks at /{here}"));
                }
                resolved.pop();
                if target.starts_with('/') {
                    resolved.clear();
                }
                pending.extend(target.split('/').rev().map(String::from));
            }
            Some(_) => {}
        }
    }
    let path = resolved.join("/");
    match fs.get(&path) {
        Some(FinalEntry { kind: Kind::File, size, .. }) => Ok((format!("/{path}"), *size)),
        Some(FinalEntry { kind: Kind::Hardlink(target), .. }) => {
            match normalize_path(target).and_then(|t| fs.get(&t)) {
                Some(FinalEntry { kind: Kind::File, size, .. }) => Ok((format!("/{path}"), *size)),
                _ => Err(format!("/{path} is a hard link to {target}, which is not a file in the image")),
            }
        }
        Some(_) => Err(format!("/{path} is not a regular file")),
        None => Err("it resolves to the root directory".to_string()),
    }
}

/// A file of the final filesystem, for the largest-files list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LargeFile {
    pub path: String,
    pub size: u64,
    pub layer: usize,
}

/// The `top` largest regular files, largest first (ties by path); empty
/// files are not worth listing.
pub fn largest_files(fs: &Filesystem, top: usize) -> Vec<LargeFile> {
    let mut files: Vec<LargeFile> = fs
        .iter()
        .filter(|(_, e)| e.kind == Kind::File && e.size > 0)
        .map(|(path, e)| LargeFile { path: format!("/{path}"), size: e.size, layer: e.layer })
        .collect();
    files.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.path.cmp(&b.path)));
    files.truncate(top);
    files
}

/// A path that more than one layer touched, as dive lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inefficiency {
    pub path: String,
    /// How many layers have it (a deletion counts as one).
    pub count: usize,
    /// The bytes of all its copies: what dive calls wasted.
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Efficiency {
    pub wasted_bytes: u64,
    /// 1.0 when no byte is wasted.
    pub score: f64,
    /// Largest first.
    pub inefficiencies: Vec<Inefficiency>,
}

/// Wasted bytes and efficiency exactly as dive 0.13 computes them
/// (`filetree.Efficiency` and `image.Analyze`), so our figures and dive's
/// can be compared:
///
/// - every leaf of every layer's tree (a file, link, empty directory or
///   whiteout) is one sighting of its path; a file counts its size, a
///   whiteout counts 0 when it deletes a file and the size of everything
///   below when it deletes a directory;
/// - a path seen in two or more layers wastes the sum of all its sightings
///   (so a file written and overwritten wastes both copies, one written and
///   deleted wastes its size);
/// - efficiency = Σ smallest sighting / Σ all sightings, over every path.
///
/// Two things follow from dive's definition and are kept on purpose: a
/// deleted directory wastes nothing (its files were each seen once), and a
/// whiteout for a path no lower layer has stops dive's scan of that layer.
/// One thing is ours: dive ignores opaque markers, we count each entry an
/// opaque directory hides as deleted by a whiteout (the same figures on
/// images without opaque directories).
pub fn dive_efficiency<L: AsRef<[Entry]>>(layers: &[L]) -> Efficiency {
    #[derive(Default)]
    struct Sightings {
        cumulative: i64,
        smallest: Option<i64>,
        count: usize,
    }
    let mut seen: HashMap<String, Sightings> = HashMap::new();
    let mut inefficient: Vec<String> = Vec::new();
    // dive looks deleted paths up in layers 0..i-1 stacked on a copy of layer 0.
    let mut stacked: Option<Tree> = None;

    for entries in layers {
        let entries = entries.as_ref();
        let mut tree = Tree::from_entries(entries);
        if let Some(lower) = &stacked {
            tree.add_opaque_whiteouts(entries, lower);
        }
        let lookup = stacked.as_ref().unwrap_or(&tree);
        for leaf in tree.leaves() {
            let path = tree.path(leaf);
            let sightings = seen.entry(path.clone()).or_default();
            let size = if tree.is_whiteout(leaf) {
                match lookup.get(&path) {
                    // dive returns an error from its visitor: the rest of this layer is skipped,
                    // and the path stays in its map with a smallest size of -1.
                    None => {
                        sightings.smallest.get_or_insert(-1);
                        break;
                    }
                    Some(previous) if lookup.nodes[previous].is_dir => lookup.subtree_size(previous),
                    Some(_) => 0,
                }
            } else {
                tree.nodes[leaf].size
            };
            sightings.cumulative += size;
            sightings.smallest = Some(sightings.smallest.map_or(size, |s| if s < 0 || size < s { size } else { s }));
            sightings.count += 1;
            if sightings.count == 2 {
                inefficient.push(path);
            }
        }
        match &mut stacked {
            Some(lower) => lower.stack(&tree),
            None => {
                let mut first = tree.clone();
                first.stack(&tree);
                stacked = Some(first);
            }
        }
    }

    let smallest: i64 = seen.values().map(|s| s.smallest.unwrap_or(0)).sum();
    let cumulative: i64 = seen.values().map(|s| s.cumulative).sum();
    let score = if cumulative == 0 { 1.0 } else { smallest as f64 / cumulative as f64 };
    let mut inefficiencies: Vec<Inefficiency> = inefficient
        .into_iter()
        .map(|path| {
            let s = &seen[&path];
            Inefficiency { bytes: s.cumulative.max(0) as u64, count: s.count, path }
        })
        .collect();
    inefficiencies.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.path.cmp(&b.path)));
    Efficiency { wasted_bytes: inefficiencies.iter().map(|i| i.bytes).sum(), score, inefficiencies }
}

/// dive's file tree: nodes named by path component, children in byte order,
/// a directory created on the way to a path carrying no metadata (size 0,
/// not a directory) until its own entry is added. Removed subtrees stay in
/// the arena, unreachable.
#[derive(Debug, Clone)]
struct Tree {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone)]
struct Node {
    name: String,
    parent: usize,
    children: BTreeMap<String, usize>,
    size: i64,
    is_dir: bool,
}

const ROOT: usize = 0;

impl Tree {
    fn new() -> Tree {
        Tree {
            nodes: vec![Node { name: String::new(), parent: ROOT, children: BTreeMap::new(), size: 0, is_dir: true }],
        }
    }

    fn from_entries(entries: &[Entry]) -> Tree {
        let mut tree = Tree::new();
        for e in entries {
            tree.add_path(&e.path, e.size as i64, e.kind == Kind::Dir);
        }
        tree
    }

    /// dive's `AddPath`: walks down creating what is missing (but never a
    /// `.wh..wh..*` name) and puts the metadata on the last node.
    fn add_path(&mut self, path: &str, size: i64, is_dir: bool) {
        let names: Vec<&str> = path.split('/').filter(|n| !n.is_empty()).collect();
        let mut node = ROOT;
        for (i, name) in names.iter().enumerate() {
            node = match self.nodes[node].children.get(*name) {
                Some(&child) => child,
                None if name.starts_with(DOUBLE_WHITEOUT_PREFIX) => return,
                None => {
                    let child = self.nodes.len();
                    self.nodes.push(Node {
                        name: name.to_string(),
                        parent: node,
                        children: BTreeMap::new(),
                        size: 0,
                        is_dir: false,
                    });
                    self.nodes[node].children.insert(name.to_string(), child);
                    child
                }
            };
            if i == names.len() - 1 {
                self.nodes[node].size = size;
                self.nodes[node].is_dir = is_dir;
            }
        }
    }

    fn get(&self, path: &str) -> Option<usize> {
        path.split('/')
            .filter(|n| !n.is_empty())
            .try_fold(ROOT, |node, name| self.nodes[node].children.get(name).copied())
    }

    fn remove(&mut self, path: &str) {
        if let Some(node) = self.get(path).filter(|&n| n != ROOT) {
            let parent = self.nodes[node].parent;
            let name = self.nodes[node].name.clone();
            self.nodes[parent].children.remove(&name);
        }
    }

    fn is_whiteout(&self, node: usize) -> bool {
        self.nodes[node].name.starts_with(WHITEOUT_PREFIX)
    }

    /// dive's `Path`: `/a/b/name`, with a whiteout's prefix dropped from its own name.
    fn path(&self, node: usize) -> String {
        let mut names = vec![self.nodes[node].name.strip_prefix(WHITEOUT_PREFIX).unwrap_or(&self.nodes[node].name)];
        let mut at = self.nodes[node].parent;
        while at != ROOT {
            names.push(&self.nodes[at].name);
            at = self.nodes[at].parent;
        }
        names.reverse();
        format!("/{}", names.join("/"))
    }

    /// Every node below the root, children before their parent, siblings in
    /// byte order: the order of dive's `VisitDepthChildFirst`.
    fn post_order(&self) -> Vec<usize> {
        fn walk(tree: &Tree, node: usize, out: &mut Vec<usize>) {
            for &child in tree.nodes[node].children.values() {
                walk(tree, child, out);
            }
            out.push(node);
        }
        let mut out = Vec::new();
        walk(self, ROOT, &mut out);
        out.pop(); // the root
        out
    }

    fn leaves(&self) -> Vec<usize> {
        self.post_order().into_iter().filter(|&n| self.nodes[n].children.is_empty()).collect()
    }

    /// The sizes of a node and everything below it.
    fn subtree_size(&self, node: usize) -> i64 {
        self.nodes[node].size + self.nodes[node].children.values().map(|&c| self.subtree_size(c)).sum::<i64>()
    }

    /// dive's `Stack`: `upper`'s whiteouts delete, its other nodes are added
    /// (metadata replaced, children kept).
    fn stack(&mut self, upper: &Tree) {
        for node in upper.post_order() {
            let path = upper.path(node);
            if upper.is_whiteout(node) {
                self.remove(&path);
            } else {
                self.add_path(&path, upper.nodes[node].size, upper.nodes[node].is_dir);
            }
        }
    }

    /// Our addition to dive: an opaque marker becomes a whiteout for each
    /// entry of the directory in `lower` that this layer doesn't itself have.
    fn add_opaque_whiteouts(&mut self, entries: &[Entry], lower: &Tree) {
        for dir in entries.iter().filter_map(Entry::opaque_dir) {
            let Some(lower_dir) = lower.get(dir) else { continue };
            for name in lower.nodes[lower_dir].children.keys() {
                let hidden = join(dir, name);
                let whiteout = join(dir, &format!("{WHITEOUT_PREFIX}{name}"));
                if !name.starts_with(WHITEOUT_PREFIX) && self.get(&hidden).is_none() && self.get(&whiteout).is_none() {
                    self.add_path(&whiteout, 0, false);
                }
            }
        }
    }
}

/// The image config's `history`: one entry per Dockerfile instruction,
/// `empty_layer` for those that made no layer.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct HistoryEntry {
    #[serde(default)]
    pub created_by: Option<String>,
    #[serde(default)]
    pub empty_layer: bool,
}

/// What made each layer: the history entries that made a layer, in order,
/// paired with the layers (as dive pairs them); `(missing)` where the
/// history runs out (history is optional metadata).
pub fn layer_instructions(history: &[HistoryEntry], layers: usize) -> Vec<String> {
    let mut made_layers = history.iter().filter(|h| !h.empty_layer);
    (0..layers)
        .map(|_| match made_layers.next() {
            Some(h) => h.created_by.clone().unwrap_or_default(),
            None => "(missing)".to_string(),
        })
        .collect()
}

/// An instruction for the table: BuildKit's `|N KEY=VALUE…` build-arg
/// prefix, the shell and the `# buildkit` suffix dropped, cut to `width`.
pub fn short_instruction(created_by: &str, width: usize) -> String {
    let mut text = created_by.trim().trim_end_matches("# buildkit").trim_end().to_string();
    if let Some(rest) = text.strip_prefix("RUN |") {
        let mut parts = rest.splitn(2, ' ');
        let count: usize = parts.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        let mut rest = parts.next().unwrap_or("");
        for _ in 0..count {
            rest = rest.split_once(' ').map_or("", |(_, r)| r);
        }
        text = format!("RUN {rest}");
    }
    if let Some(command) = text.strip_prefix("RUN /bin/").and_then(|r| r.split_once(" -c ")).map(|(_, c)| c.to_string())
    {
        text = format!("RUN {command}");
    }
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() > width {
        format!("{}…", text.chars().take(width.saturating_sub(1)).collect::<String>())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: u64) -> Entry {
        Entry { path: path.into(), kind: Kind::File, size }
    }

    fn dir(path: &str) -> Entry {
        Entry { path: path.into(), kind: Kind::Dir, size: 0 }
    }

    fn symlink(path: &str, target: &str) -> Entry {
        Entry { path: path.into(), kind: Kind::Symlink(target.into()), size: 0 }
    }

    #[test]
    fn paths_are_cleaned_like_go_path_clean() {
        assert_eq!(normalize_path("./usr/bin/").as_deref(), Some("usr/bin"));
        assert_eq!(normalize_path("/a//b/../c").as_deref(), Some("a/c"));
        assert_eq!(normalize_path("./"), None);
    }

    #[test]
    fn whiteouts_and_opaque_dirs_delete_from_lower_layers_only() {
        let layers = vec![
            vec![dir("data"), file("data/a", 10), file("data/b", 20), dir("opt"), dir("opt/x"), file("opt/x/y", 30)],
            // .wh.a deletes a; the opaque marker hides opt's old content, not what this layer adds.
            vec![
                dir("data"),
                file("data/.wh.a", 0),
                dir("opt"),
                file("opt/.wh..wh..opq", 0),
                file("opt/new", 5),
                file("data/a2", 1),
            ],
            vec![file("data/.wh.b", 0), file("data/b", 7)],
        ];
        let fs = final_filesystem(&layers);
        let files: Vec<(&str, u64, usize)> =
            fs.iter().filter(|(_, e)| e.kind == Kind::File).map(|(p, e)| (p.as_str(), e.size, e.layer)).collect();
        assert_eq!(files, vec![("data/a2", 1, 1), ("data/b", 7, 2), ("opt/new", 5, 1)]);
        assert!(!fs.contains_key("opt/x"));
    }

    #[test]
    fn deleting_a_directory_removes_everything_below_it() {
        let layers = vec![vec![dir("d"), dir("d/e"), file("d/e/f", 3), file("dd", 1)], vec![file(".wh.d", 0)]];
        let fs = final_filesystem(&layers);
        assert_eq!(fs.keys().collect::<Vec<_>>(), vec!["dd"]);
    }

    #[test]
    fn budget_files_resolve_through_symlinks_inside_the_image() {
        let layers = vec![vec![
            dir("usr"),
            dir("usr/local"),
            dir("usr/local/bin"),
            dir("usr/local/lib"),
            dir("usr/local/lib/tool"),
            file("usr/local/lib/tool/tool-1.0", 300),
            symlink("usr/local/bin/tool", "../lib/tool/tool-1.0"),
            symlink("usr/local/bin/abs", "/usr/local/bin/tool"),
            symlink("usr/local/current", "lib/tool"),
            symlink("loop", "/loop"),
            Entry {
                path: "usr/local/bin/hard".into(),
                kind: Kind::Hardlink("usr/local/lib/tool/tool-1.0".into()),
                size: 0,
            },
        ]];
        let fs = final_filesystem(&layers);
        for path in ["/usr/local/bin/tool", "/usr/local/bin/abs", "/usr/local/current/tool-1.0", "/usr/local/bin/hard"]
        {
            assert_eq!(resolve_file(&fs, path).map(|(_, s)| s), Ok(300), "{path}");
        }
        assert_eq!(resolve_file(&fs, "/usr/local/bin/tool").unwrap().0, "/usr/local/lib/tool/tool-1.0");
        assert!(resolve_file(&fs, "/usr/local/bin/missing")
            .unwrap_err()
            .contains("/usr/local/bin/missing is not in the image"));
        assert!(resolve_file(&fs, "/usr/local").unwrap_err().contains("not a regular file"));
        assert!(resolve_file(&fs, "/loop").unwrap_err().contains("too many symlinks"));
    }

    #[test]
    fn largest_files_name_the_layer_that_added_them() {
        let layers =
            vec![vec![file("a", 5), file("b", 50), dir("c"), file("empty", 0)], vec![file("a", 500), file("d", 50)]];
        let top = largest_files(&final_filesystem(&layers), 2);
        assert_eq!(
            top,
            vec![
                LargeFile { path: "/a".into(), size: 500, layer: 1 },
                LargeFile { path: "/b".into(), size: 50, layer: 0 }
            ]
        );
    }

    #[test]
    fn overwritten_and_deleted_files_waste_what_dive_says() {
        // The size fixture's shape: dive 0.13.1 reports 15 MB wasted for it.
        let mb = 1_000_000;
        let layers = vec![
            vec![dir("bin"), file("bin/busybox", 2 * mb)],
            vec![dir("data"), file("data/deleted.bin", 5 * mb), file("data/overwritten.bin", 5 * mb)],
            vec![dir("data"), file("data/.wh.deleted.bin", 0), file("data/overwritten.bin", 5 * mb)],
        ];
        let e = dive_efficiency(&layers);
        assert_eq!(e.wasted_bytes, 15 * mb);
        assert_eq!(
            e.inefficiencies,
            vec![
                Inefficiency { path: "/data/overwritten.bin".into(), count: 2, bytes: 10 * mb },
                Inefficiency { path: "/data/deleted.bin".into(), count: 2, bytes: 5 * mb },
            ]
        );
        // Smallest sightings: busybox 2, deleted 0, overwritten 5; all: 2 + 5 + 10.
        assert!((e.score - 7.0 / 17.0).abs() < 1e-12, "{}", e.score);
    }

    #[test]
    fn dive_counts_a_deleted_directory_once_and_wastes_nothing() {
        let layers = vec![vec![dir("d"), file("d/f", 100)], vec![file(".wh.d", 0)]];
        let e = dive_efficiency(&layers);
        assert_eq!(e.wasted_bytes, 0);
        // /d/f seen once (100), /d seen once as a deleted directory (100).
        assert_eq!(e.score, 1.0);
    }

    #[test]
    fn a_layer_without_waste_is_fully_efficient() {
        let e = dive_efficiency(&[vec![dir("a"), file("a/x", 1)], vec![dir("a"), file("a/y", 2)]]);
        assert_eq!((e.wasted_bytes, e.score), (0, 1.0));
        assert_eq!(dive_efficiency::<Vec<Entry>>(&[]).score, 1.0);
    }

    #[test]
    fn an_empty_directory_seen_twice_is_listed_but_wastes_no_bytes() {
        let e = dive_efficiency(&[vec![dir("tmp")], vec![dir("tmp")]]);
        assert_eq!(e.wasted_bytes, 0);
        assert_eq!(e.inefficiencies.len(), 1);
    }

    #[test]
    fn a_whiteout_for_a_missing_path_stops_dive_on_that_layer() {
        // dive visits /a (.wh.a sorts first under the root) and gives up:
        // /b of the same layer is never counted; /a keeps a smallest size of -1.
        let layers = vec![vec![file("x", 10)], vec![file(".wh.a", 0), file("b", 4)]];
        let e = dive_efficiency(&layers);
        assert_eq!(e.wasted_bytes, 0);
        assert!((e.score - 9.0 / 10.0).abs() < 1e-12, "{}", e.score);
    }

    #[test]
    fn opaque_directories_waste_the_files_they_hide() {
        let layers = vec![
            vec![dir("opt"), file("opt/old", 40), file("opt/kept", 2)],
            vec![dir("opt"), file("opt/.wh..wh..opq", 0), file("opt/kept", 2)],
        ];
        let e = dive_efficiency(&layers);
        // old: 40 + a whiteout of 0; kept: 2 + 2.
        assert_eq!(e.wasted_bytes, 44);
        assert_eq!(e.inefficiencies[0], Inefficiency { path: "/opt/old".into(), count: 2, bytes: 40 });
    }

    #[test]
    fn history_entries_without_layers_are_skipped() {
        let h = |by: &str, empty: bool| HistoryEntry { created_by: Some(by.into()), empty_layer: empty };
        let history = vec![h("ARG X", true), h("COPY a /a", false), h("ENV Y=1", true), h("RUN make", false)];
        assert_eq!(layer_instructions(&history, 3), vec!["COPY a /a", "RUN make", "(missing)"]);
        assert_eq!(layer_instructions(&history, 1), vec!["COPY a /a"]);
    }

    #[test]
    fn instructions_are_shortened_for_the_table() {
        let run = r#"RUN |2 TARGETARCH=amd64 WORK_MB=1 /bin/ash -o pipefail -c head -c "$((WORK_MB * 1048576))" /dev/urandom # buildkit"#;
        assert_eq!(short_instruction(run, 80), r#"RUN head -c "$((WORK_MB * 1048576))" /dev/urandom"#);
        assert_eq!(short_instruction("RUN /bin/sh -c mkdir -p /etc # buildkit", 80), "RUN mkdir -p /etc");
        assert_eq!(short_instruction("COPY late.txt /etc/late.txt # buildkit", 10), "COPY late…");
    }
}
