//! cosign: signing and verifying images and their attestations in a
//! registry. With a key (`--key`, its password in `COSIGN_PASSWORD`) or
//! keyless (an OIDC token: GitHub Actions with `id-token: write`); with the
//! transparency log, or without it (`no_tlog`) where none is reachable.
//! Every failure is one line naming the reference and what cosign said.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Result};

use super::process::last_lines;
use super::tools::{self, Tool};

pub const COSIGN: Tool = Tool {
    name: "cosign",
    program: "cosign",
    min_version: (2, 2, 0),
    fix: "run `sudo bash scripts/setup-host.sh` (it installs cosign 2.5.0 from Debian 13, signature-checked by apt)",
};

/// How long one cosign call may take (a registry round trip or a few).
const TIMEOUT: Duration = Duration::from_secs(300);

/// Who signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    /// A cosign private key file; its password in `COSIGN_PASSWORD`.
    Key(PathBuf),
    /// Keyless: a short-lived certificate for the ambient OIDC identity.
    Keyless,
}

/// Whose signatures count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verifier {
    /// A cosign public key file (or the private key's public half).
    Key(PathBuf),
    /// Keyless: the certificate's identity (a regular expression) and issuer.
    Keyless { identity_regexp: String, issuer: String },
}

/// Whether the OIDC token keyless signing needs is there (GitHub Actions
/// with `id-token: write`, or `SIGSTORE_ID_TOKEN`).
pub fn oidc_available() -> bool {
    std::env::var_os("SIGSTORE_ID_TOKEN").is_some() || std::env::var_os("ACTIONS_ID_TOKEN_REQUEST_URL").is_some()
}

/// A new key pair in `dir` (`cosign.key`, `cosign.pub`), the private key
/// encrypted with `password`: for signing where no OIDC identity is.
pub fn generate_key_pair(dir: &Path, password: &str) -> Result<(PathBuf, PathBuf)> {
    let cmd = COSIGN.command()?.arg("generate-key-pair").current_dir(dir).env("COSIGN_PASSWORD", password);
    let out = COSIGN.run(&cmd, TIMEOUT)?;
    if !out.status.success() {
        bail!(
            "cosign generate-key-pair in {}: {}",
            dir.display(),
            last_lines(&String::from_utf8_lossy(&out.stderr), 1)
        );
    }
    Ok((dir.join("cosign.key"), dir.join("cosign.pub")))
}

/// The key can be read and decrypted (with `COSIGN_PASSWORD`): checked
/// before anything is pushed. Returns its public key (PEM).
pub fn check_key(key: &Path) -> Result<String> {
    if !key.is_file() {
        bail!(
            "the signing key {} does not exist: pass a cosign key (`cosign generate-key-pair`) with --key",
            key.display()
        );
    }
    let out = COSIGN.run(&COSIGN.command()?.args(["public-key", "--key"]).arg(key).probe(), TIMEOUT)?;
    if !out.status.success() {
        let why = last_lines(&String::from_utf8_lossy(&out.stderr), 1);
        if why.contains("decrypt") {
            bail!("the signing key {} can't be decrypted: set COSIGN_PASSWORD to its password ({why})", key.display());
        }
        bail!("the signing key {} is not a cosign key: {why}", key.display());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn tlog_flag(signing: bool, no_tlog: bool) -> Option<&'static str> {
    match (signing, no_tlog) {
        (true, true) => Some("--tlog-upload=false"),
        (false, true) => Some("--insecure-ignore-tlog=true"),
        _ => None,
    }
}

fn signer_args(signer: &Signer) -> Vec<std::ffi::OsString> {
    match signer {
        Signer::Key(key) => vec!["--key".into(), key.into()],
        Signer::Keyless => vec![],
    }
}

fn verifier_args(verifier: &Verifier) -> Vec<std::ffi::OsString> {
    match verifier {
        Verifier::Key(key) => vec!["--key".into(), key.into()],
        Verifier::Keyless { identity_regexp, issuer } => vec![
            "--certificate-identity-regexp".into(),
            identity_regexp.into(),
            "--certificate-oidc-issuer".into(),
            issuer.into(),
        ],
    }
}

fn run(what: &str, reference: &str, cmd: &super::process::Cmd) -> Result<String> {
    let out = COSIGN.run(cmd, TIMEOUT)?;
    if !out.status.success() {
        let err = tools::failed(&COSIGN, &out).to_string();
        bail!("{what} {reference}: {}", err.replace('\n', " "));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Signs `reference` (by digest); `recursive` also signs each manifest of an index.
pub fn sign(reference: &str, signer: &Signer, no_tlog: bool, recursive: bool) -> Result<()> {
    let mut cmd = COSIGN.command()?.args(["sign", "--yes"]).args(signer_args(signer));
    cmd = cmd.args(tlog_flag(true, no_tlog)).args(recursive.then_some("--recursive"));
    run("signing", reference, &cmd.arg(reference)).map(drop)
}

/// Attaches `predicate` (a CycloneDX SBOM) to `reference` as a signed attestation.
pub fn attest_sbom(reference: &str, predicate: &Path, signer: &Signer, no_tlog: bool) -> Result<()> {
    let cmd = COSIGN
        .command()?
        .args(["attest", "--yes", "--type", "cyclonedx", "--predicate"])
        .arg(predicate)
        .args(signer_args(signer))
        .args(tlog_flag(true, no_tlog))
        .arg(reference);
    run("attesting the SBOM of", reference, &cmd).map(drop)
}

/// Verifies the signature of `reference`; the number of valid signatures.
pub fn verify(reference: &str, verifier: &Verifier, no_tlog: bool) -> Result<usize> {
    verifications(&["verify", "--output", "json"], "verifying the signature of", reference, verifier, no_tlog)
}

/// Verifies the CycloneDX SBOM attestation of `reference`; the number found.
pub fn verify_sbom(reference: &str, verifier: &Verifier, no_tlog: bool) -> Result<usize> {
    let args = ["verify-attestation", "--type", "cyclonedx"];
    verifications(&args, "verifying the SBOM attestation of", reference, verifier, no_tlog)
}

/// `cosign ARGS… REFERENCE` with `verifier`'s flags; how many items it verified.
fn verifications(args: &[&str], what: &str, reference: &str, verifier: &Verifier, no_tlog: bool) -> Result<usize> {
    let cmd = COSIGN
        .command()?
        .args(args)
        .args(verifier_args(verifier))
        .args(tlog_flag(false, no_tlog))
        .arg(reference)
        .probe();
    Ok(count_json_items(&run(what, reference, &cmd)?))
}

/// cosign prints a JSON array (verify) or one JSON object per line
/// (verify-attestation): how many there are.
pub fn count_json_items(out: &str) -> usize {
    match serde_json::from_str::<serde_json::Value>(out.trim()) {
        Ok(serde_json::Value::Array(items)) => items.len(),
        _ => out.lines().filter(|l| l.trim_start().starts_with('{')).count(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_counted_in_both_output_shapes() {
        assert_eq!(count_json_items(r#"[{"critical":{}},{"critical":{}}]"#), 2);
        assert_eq!(count_json_items("{\"payloadType\":\"a\"}\n{\"payloadType\":\"b\"}\n{\"payloadType\":\"c\"}\n"), 3);
        assert_eq!(count_json_items(""), 0);
    }

    #[test]
    fn the_tlog_flags_follow_the_mode() {
        assert_eq!(tlog_flag(true, true), Some("--tlog-upload=false"));
        assert_eq!(tlog_flag(false, true), Some("--insecure-ignore-tlog=true"));
        assert_eq!(tlog_flag(true, false), None);
    }
}
