//! `bootseal build-uki`: flags for [`bootseal::uki::build`] and [`bootseal::uki::measure`].

use super::{passphrase, read_input, write_output};
use anyhow::{Context, bail};
use bootseal::uki::{self, Bank, PcrSigning, UkiInputs, pcr};
use std::path::PathBuf;

/// Assemble a UKI like `ukify build`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kernel image (EFI-stub bzImage/Image) for `.linux`.
    #[arg(long, required_unless_present = "from")]
    pub linux: Option<PathBuf>,
    /// Initrd for `.initrd`.
    #[arg(long)]
    pub initrd: Option<PathBuf>,
    /// os-release file for `.osrel` (the image's usr/lib/os-release).
    #[arg(long, required_unless_present = "from")]
    pub os_release: Option<PathBuf>,
    /// systemd-stub (linuxx64.efi.stub / linuxaa64.efi.stub).
    #[arg(long)]
    pub stub: Option<PathBuf>,
    /// Kernel command line: TEXT (whitespace-normalised) or @FILE (verbatim).
    #[arg(long)]
    pub cmdline: Option<String>,
    /// Kernel release for `.uname` (default: read from the kernel's boot header).
    #[arg(long)]
    pub uname: Option<String>,
    /// SBAT text or @FILE to merge (default: ukify's `uki` line); may be repeated.
    #[arg(long)]
    pub sbat: Vec<String>,
    /// Print the predicted PCR 11 values.
    #[arg(long)]
    pub measure: bool,
    /// With --measure: print JSON like `ukify --measure --json=short`.
    #[arg(long)]
    pub json: bool,
    /// PCR banks for --measure and .pcrsig (comma-separated; default all four).
    #[arg(long, value_delimiter = ',')]
    pub pcr_banks: Vec<String>,
    /// Phase paths for --measure and .pcrsig (comma-separated, e.g. enter-initrd:leave-initrd).
    #[arg(long, value_delimiter = ',')]
    pub phases: Vec<String>,
    /// Private key to sign PCR 11 policies (.pcrsig): RSA key file or pkcs11: URI; adds .pcrpkey.
    #[arg(long, value_name = "FILE|URI")]
    pub pcr_private_key: Option<PathBuf>,
    /// Public key to embed as .pcrpkey (default: derived from --pcr-private-key).
    #[arg(long)]
    pub pcr_public_key: Option<PathBuf>,
    /// File holding the passphrase of an encrypted --pcr-private-key.
    #[arg(long)]
    pub pcr_key_pass_file: Option<PathBuf>,
    /// Environment variable holding the passphrase of an encrypted --pcr-private-key.
    #[arg(long)]
    pub pcr_key_pass_env: Option<String>,
    /// PKCS#11 module for a pkcs11: --pcr-private-key without module-path (default:
    /// $BOOTSEAL_PKCS11_MODULE, else p11-kit's proxy module).
    #[arg(long, value_name = "PATH")]
    pub pkcs11_module: Option<PathBuf>,
    /// systemd version of the stub, if its .sdmagic does not say.
    #[arg(long)]
    pub stub_version: Option<u32>,
    /// Write the merged .sbat over the stub's own even where it overlaps the next section
    /// (ukify's layout; systemd 252 stubs then warn at boot). Default: move it after the stub's sections.
    #[arg(long)]
    pub allow_section_overlap: bool,
    /// Output UKI (unsigned).
    #[arg(short, long, required_unless_present = "bootloader_out")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub image: super::build_uki_from::FromImageArgs,
}

pub(crate) fn text_or_file(arg: &str, what: &str) -> anyhow::Result<Vec<u8>> {
    match arg.strip_prefix('@') {
        Some(path) => read_input(path.as_ref(), what),
        None => Ok(arg.as_bytes().to_vec()),
    }
}

/// Run `build-uki`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.image.from.is_some() {
        return super::build_uki_from::run(&args);
    }
    let (stub, stub_name) = match (&args.image.stub_from, &args.stub) {
        (Some(image), _) => (
            super::build_uki_from::stub_from_image(image, &args.image)?,
            image.clone(),
        ),
        (None, Some(p)) => (read_input(p, "stub")?, p.display().to_string()),
        (None, None) => bail!("give --stub FILE, --stub-from IMAGE or --from IMAGE"),
    };
    let linux_path = args.linux.as_deref().context("--linux is required")?;
    let linux = read_input(linux_path, "kernel")?;
    let initrd = args
        .initrd
        .as_deref()
        .map(|p| read_input(p, "initrd"))
        .transpose()?;
    let os_release = read_input(
        args.os_release
            .as_deref()
            .context("--os-release is required")?,
        "os-release",
    )?;
    let cmdline = match args.cmdline.as_deref() {
        Some(c) if c.starts_with('@') => Some(text_or_file(c, "cmdline file")?),
        Some(c) => Some(uki::normalize_cmdline(c).into_bytes()),
        None => None,
    };
    let sbat_texts = args
        .sbat
        .iter()
        .map(|s| {
            text_or_file(s, "SBAT file")
                .and_then(|b| String::from_utf8(b).context("SBAT text is not UTF-8"))
        })
        .collect::<anyhow::Result<Vec<String>>>()?;
    let mut banks = Vec::new();
    for b in &args.pcr_banks {
        banks.push(Bank::parse(b).with_context(|| format!("unknown PCR bank {b:?}"))?);
    }
    if banks.is_empty() {
        banks = Bank::ALL.to_vec();
    }
    let phases: Vec<String> = if args.phases.is_empty() {
        pcr::DEFAULT_PHASES.iter().map(|s| s.to_string()).collect()
    } else {
        args.phases.clone()
    };

    let pcr_signing = match &args.pcr_private_key {
        Some(path) => {
            let pass = passphrase(
                args.pcr_key_pass_file.as_deref(),
                args.pcr_key_pass_env.as_deref(),
            )?;
            let location = bootseal::signer::KeyLocation::parse(path)?;
            let opts = bootseal::signer::OpenOptions {
                passphrase: pass,
                pkcs11: bootseal::signer::Pkcs11Options {
                    module: args.pkcs11_module.clone(),
                    ..Default::default()
                },
            };
            let key = bootseal::signer::open_key(&location, &opts)
                .with_context(|| format!("--pcr-private-key {location}"))?;
            let public = args
                .pcr_public_key
                .as_deref()
                .map(|p| read_input(p, "PCR public key"))
                .transpose()?;
            let mut s = PcrSigning::new(key, public);
            s.banks = banks.clone();
            s.phases = phases.clone();
            Some(s)
        }
        None if args.pcr_public_key.is_some() => {
            bail!("--pcr-public-key needs --pcr-private-key")
        }
        None => None,
    };

    let inputs = UkiInputs {
        stub: &stub,
        linux: &linux,
        initrd: initrd.as_deref(),
        os_release: &os_release,
        cmdline: cmdline.as_deref(),
        uname: args.uname.as_deref(),
        sbat: (!sbat_texts.is_empty()).then(|| sbat_texts.iter().map(String::as_str).collect()),
        pcr_signing,
        stub_version: args.stub_version,
        allow_section_overlap: args.allow_section_overlap,
    };
    let image = uki::build(&inputs).with_context(|| {
        format!(
            "cannot build the UKI from kernel {} and stub {}",
            linux_path.display(),
            stub_name
        )
    })?;
    write_output(
        args.output.as_deref().context("-o/--output is required")?,
        &image,
    )?;
    // The low-level tool writes what it is given; once written, say when that is not a sound
    // sealed command line.
    if let Some(line) = cmdline.as_deref().map(String::from_utf8_lossy) {
        match bootseal::cmdline::read_composefs(&line) {
            Ok(arg) if arg.insecure => eprintln!(
                "bootseal: warning: --cmdline: {} is the insecure form (fs-verity optional at boot)",
                arg.token
            ),
            Err(bootseal::cmdline::CmdlineError::Missing) | Ok(_) => {}
            Err(e) => eprintln!("bootseal: warning: --cmdline: {e}"),
        }
    }

    if args.measure {
        let phase_refs: Vec<&str> = std::iter::once("")
            .chain(phases.iter().map(String::as_str))
            .collect();
        let values = uki::measure(&inputs, &banks, &phase_refs)?;
        if args.json {
            println!("{}", pcr::to_json(&values));
        } else {
            for v in &values {
                let phase = if v.phase.is_empty() {
                    "(sections)"
                } else {
                    &v.phase
                };
                println!("11:{}={}  # {phase}", v.bank.name(), hex::encode(&v.value));
            }
        }
    }
    Ok(())
}
