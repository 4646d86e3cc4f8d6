//! Command-line interface: flag parsing only; every subcommand calls into the library.

mod build_addon;
pub mod build_uki;
mod completions;
mod composefs_meta;
mod diff;
mod digest;
mod enroll;
pub mod inspect;
mod keys;
mod man;
mod options;
mod seal;
pub mod sign;
mod sign_request;
mod sync;
mod verify;
pub mod verify_pe;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::Path;
use zeroize::Zeroizing;

/// What `--version` prints after the name: the crate version, the composefs-rs semantics the
/// digest follows (the `=0.9.0` pin in Cargo.toml) and the default EROFS format.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\ncomposefs digest: composefs-rs 0.9.0 (default; 0.9.4 with --composefs-compat)",
    "\nEROFS format: V1 (default; V2 with --erofs-version 2)",
);

/// Seal bootc container images: composefs digest, UKI, Secure Boot signature.
#[derive(Debug, Parser)]
#[command(name = "bootseal", version, long_version = LONG_VERSION, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the composefs digest bootc computes for an image
    Digest(digest::Args),
    /// Compare two bootable trees (images or composefs dumpfiles): the entries that differ
    /// and in what; exit 1 if any, 0 if none
    Diff(diff::Args),
    /// Seal an image: digest, UKI, signatures, new top layer, written to the destination
    Seal(seal::Args),
    /// Seal every bootc tag of a repository into another, leaving up-to-date tags alone
    Sync(sync::Args),
    /// Verify a sealed image: digest vs. the UKI's composefs=, one UKI and kernel, signatures
    Verify(verify::Args),
    /// Assemble a Unified Kernel Image from a stub, kernel, initrd, os-release and cmdline.
    BuildUki(build_uki::Args),
    /// Assemble a UKI add-on (kernel arguments in a signed PE) like `ukify build` without --linux
    BuildAddon(build_addon::Args),
    /// Sign a PE image (UKI, systemd-boot, kernel) for UEFI Secure Boot (Authenticode).
    Sign(sign::Args),
    /// Sign a signing request (from --prepare-signing) where the key is: the air-gapped side
    SignRequest(sign_request::Args),
    /// Verify a PE image's Authenticode signature against a certificate.
    VerifyPe(verify_pe::Args),
    /// Show a UKI's sections, cmdline, uname, os-release, signatures and PCR 11.
    Inspect(inspect::Args),
    /// Create Secure Boot keys (PK, KEK, db) and signed enrollment updates (.auth)
    Keys(keys::Args),
    /// Print a shell completion script (bash, zsh, fish, ...)
    Completions(completions::Args),
    /// Print the manual page (or write one per subcommand with --out-dir)
    Man(man::Args),
}

/// Parses the command line and runs the subcommand; returns the process exit code.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // `diff` answers with its status (0 same, 1 different), so its failures are 2, as diff(1)'s.
    let failure = match cli.command {
        Command::Diff(_) => std::process::ExitCode::from(2),
        _ => std::process::ExitCode::FAILURE,
    };
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bootseal: {}", one_line(&e));
            failure
        }
    }
}

/// The error and its causes on one line, without repeating a cause the message already holds.
fn one_line(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    out
}

fn run(command: Command) -> anyhow::Result<std::process::ExitCode> {
    let done = |r: anyhow::Result<()>| r.map(|()| std::process::ExitCode::SUCCESS);
    match command {
        Command::Digest(a) => done(digest::run(a)),
        Command::Diff(a) => diff::run(a),
        Command::Seal(a) => done(seal::run(a)),
        Command::Sync(a) => done(sync::run(a)),
        Command::Verify(a) => done(verify::run(a)),
        Command::BuildUki(a) => done(build_uki::run(a)),
        Command::BuildAddon(a) => done(build_addon::run(a)),
        Command::Sign(a) => done(sign::run(a)),
        Command::SignRequest(a) => done(sign_request::run(a)),
        Command::VerifyPe(a) => done(verify_pe::run(a)),
        Command::Inspect(a) => done(inspect::run(a)),
        Command::Keys(a) => done(keys::run(a)),
        Command::Completions(a) => done(completions::run(a)),
        Command::Man(a) => done(man::run(a)),
    }
}

/// Read a whole input file, naming it in the error.
pub(crate) fn read_input(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

/// Read a PE input (stub, kernel, boot loader, UKI) and refuse it, naming the file and the
/// header field, unless [`bootseal::pe::PeHeaders::parse`] accepts it.
pub(crate) fn read_pe(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    let bytes = read_input(path, what)?;
    bootseal::pe::PeHeaders::parse(&bytes)
        .with_context(|| format!("{what} {} is not a usable PE image", path.display()))?;
    Ok(bytes)
}

/// Read a whole input file into a Vec with `spare` bytes of extra capacity.
pub(crate) fn read_input_with_room(
    path: &Path,
    what: &str,
    spare: usize,
) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    let len = f.metadata().map(|m| m.len() as usize).unwrap_or(0);
    let mut v = Vec::with_capacity(len + spare);
    f.read_to_end(&mut v)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    Ok(v)
}

/// Write `bytes` to `path` via a temporary file in the same directory and a rename, so a
/// failure never leaves a half-written result (no fsync, like sbsign and cp).
pub(crate) fn write_output(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    // NamedTempFile is created 0600; outputs are boot images, not secrets: 0644 like ukify.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("cannot set permissions of {}", path.display()))?;
    }
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// A certificate (PEM or DER file, or a `pkcs11:` URI), naming it in the error.
pub(crate) fn read_certificate(path: &Path) -> anyhow::Result<x509_cert::Certificate> {
    read_certificate_with(path, &bootseal::signer::OpenOptions::default())
}

/// [`read_certificate`] with a token PIN and module at hand.
pub(crate) fn read_certificate_with(
    path: &Path,
    opts: &bootseal::signer::OpenOptions,
) -> anyhow::Result<x509_cert::Certificate> {
    let location = bootseal::signer::KeyLocation::parse(path)?;
    Ok(bootseal::signer::open_certificate(&location, opts)?)
}

/// A key passphrase or token PIN from a file or an environment variable — never from argv;
/// wiped from memory when dropped.
pub(crate) fn passphrase(
    file: Option<&Path>,
    env: Option<&str>,
) -> anyhow::Result<Option<Zeroizing<Vec<u8>>>> {
    if let Some(f) = file {
        let mut p = Zeroizing::new(read_input(f, "key passphrase file")?);
        while p.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            p.pop();
        }
        return Ok(Some(p));
    }
    if let Some(name) = env {
        let v = std::env::var_os(name)
            .with_context(|| format!("environment variable {name} (key passphrase) is not set"))?;
        return Ok(Some(Zeroizing::new(v.into_encoded_bytes())));
    }
    Ok(None)
}
