//! A private OCI registry (distribution's `docker-registry`, as
//! scripts/setup-host.sh installs it) on a loopback port with its storage in
//! a directory, for measurements the shared one can't give: its request log
//! (JSON, info level) tells which blobs were uploaded, and its storage how
//! big each is. Stopped (its process group killed) on drop.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::http;
use super::process::{last_lines, Background, Cmd};

pub struct LocalRegistry {
    /// `localhost:PORT`: plain HTTP, as the engine and buildx allow for loopback.
    pub address: String,
    pub root: PathBuf,
    /// Its request log (JSON lines).
    pub log: PathBuf,
    _process: Background,
}

impl LocalRegistry {
    /// Starts a registry storing under `dir` on a free loopback port.
    pub fn start(dir: &Path) -> Result<LocalRegistry> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free port for the registry")?
            .port();
        let root = dir.join("storage");
        let config = dir.join("registry.yml");
        std::fs::write(&config, config_yaml(&root, port)?).context("writing the registry's configuration")?;
        let program = which::which("docker-registry")
            .map_err(|_| anyhow::anyhow!("docker-registry is not installed: run `sudo bash scripts/setup-host.sh`"))?;
        let log = dir.join("registry.log");
        let process = Cmd::new(program).arg("serve").arg(&config).spawn_logged(&log)?;
        let address = format!("localhost:{port}");
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if http::get_status(addr, &address, "/v2/").is_ok_and(|s| s == 200) {
                return Ok(LocalRegistry { address, root, log, _process: process });
            }
            if !process.running() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        bail!("the registry on {address} did not answer within 10 s: {}", last_lines(&said, 2))
    }

    /// Its log from byte `from` on (what happened since then), and where it ends now.
    pub fn log_since(&self, from: u64) -> Result<(String, u64)> {
        let bytes = std::fs::read(&self.log).with_context(|| format!("reading {}", self.log.display()))?;
        let from = usize::try_from(from).unwrap_or(usize::MAX).min(bytes.len());
        Ok((String::from_utf8_lossy(&bytes[from..]).into_owned(), bytes.len() as u64))
    }

    /// The size of a blob in its storage.
    pub fn blob_size(&self, digest: &str) -> Option<u64> {
        let hex = digest.strip_prefix("sha256:")?;
        let path = self.root.join("docker/registry/v2/blobs/sha256").join(hex.get(..2)?).join(hex).join("data");
        std::fs::metadata(path).ok().map(|m| m.len())
    }
}

/// The registry's configuration: JSON logs at info level, storage under `root`, loopback `port`.
fn config_yaml(root: &Path, port: u16) -> Result<String> {
    let config = serde_json::json!({
        "version": "0.1",
        "log": { "level": "info", "formatter": "json" },
        "storage": { "filesystem": { "rootdirectory": root.to_string_lossy() } },
        "http": { "addr": format!("127.0.0.1:{port}") },
    });
    serde_norway::to_string(&config).context("writing the registry's configuration as YAML")
}

/// The blobs a registry log says were uploaded: completed uploads (`PUT
/// …/blobs/uploads/…?digest=D` answered 201). Cross-repository mounts and
/// blobs the client found there already are not uploads.
pub fn uploaded_blobs(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|v| v["http.request.method"] == "PUT" && v["http.response.status"] == 201)
        .filter_map(|v| {
            let uri = v["http.request.uri"].as_str()?;
            if !uri.contains("/blobs/uploads/") {
                return None;
            }
            let digest = uri.split(['?', '&']).find_map(|kv| kv.strip_prefix("digest="))?;
            Some(digest.replace("%3A", ":").replace("%3a", ":"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_is_yaml_whatever_the_storage_path() {
        // Before: built with format!, so a path with `: ` or ` #` broke the YAML or changed its meaning.
        for root in
            ["/tmp/a: b", "/tmp/plain", "/tmp/x #not a comment", "/tmp/'quoted\" dir", "/tmp/- dash", "/tmp/yes"]
        {
            let yaml = config_yaml(Path::new(root), 5000).unwrap();
            let doc: serde_norway::Value =
                serde_norway::from_str(&yaml).unwrap_or_else(|e| panic!("{root:?}: {e}\n{yaml}"));
            assert_eq!(doc["storage"]["filesystem"]["rootdirectory"].as_str(), Some(root), "{yaml}");
            assert_eq!(doc["http"]["addr"].as_str(), Some("127.0.0.1:5000"), "{yaml}");
            assert_eq!(doc["log"]["formatter"].as_str(), Some("json"), "{yaml}");
        }
    }

    #[test]
    fn completed_uploads_are_read_from_the_log() {
        let log = [
            r#"{"http.request.method":"PUT","http.request.uri":"/v2/x/blobs/uploads/u1?_state=s\u0026digest=sha256%3Aaaa","http.response.status":201,"msg":"response completed"}"#,
            r#"{"http.request.method":"PATCH","http.request.uri":"/v2/x/blobs/uploads/u2","http.response.status":202}"#,
            r#"{"http.request.method":"POST","http.request.uri":"/v2/y/blobs/uploads/?mount=sha256:aaa\u0026from=x","http.response.status":201}"#,
            r#"{"http.request.method":"PUT","http.request.uri":"/v2/x/manifests/sha256:ccc","http.response.status":201}"#,
            r#"{"http.request.method":"PUT","http.request.uri":"/v2/x/blobs/uploads/u3?digest=sha256%3Abbb","http.response.status":500}"#,
            "not json: a plain log line",
        ]
        .join("\n");
        assert_eq!(uploaded_blobs(&log), ["sha256:aaa"]);
    }
}
