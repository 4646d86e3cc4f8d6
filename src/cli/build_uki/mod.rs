//! `bootseal build-uki`: flags for [`bootseal::uki::build`] and [`bootseal::uki::measure`].
//! The inputs come from files (here) or from a bootc image (`--from`, [`from_image`]); flags
//! that name a file input conflict with `--from` in the parser, so none is silently ignored.

mod from_image;
mod pcr;

use super::{read_input, write_output};
use anyhow::{Context, bail};
use bootseal::uki::{self, UkiInputs};
use std::path::PathBuf;

/// Assemble a UKI like `ukify build`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kernel image (EFI-stub bzImage/Image) for `.linux`.
    #[arg(long, required_unless_present = "from", conflicts_with = "from")]
    pub linux: Option<PathBuf>,
    /// Initrd for `.initrd`.
    #[arg(long, conflicts_with = "from")]
    pub initrd: Option<PathBuf>,
    /// os-release file for `.osrel` (the image's usr/lib/os-release).
    #[arg(long, required_unless_present = "from", conflicts_with = "from")]
    pub os_release: Option<PathBuf>,
    /// systemd-stub (linuxx64.efi.stub / linuxaa64.efi.stub).
    #[arg(long)]
    pub stub: Option<PathBuf>,
    /// Kernel command line: TEXT (whitespace-normalised) or @FILE (verbatim). With --from the
    /// command line is the sealed one: add arguments with --karg.
    #[arg(long, conflicts_with = "from")]
    pub cmdline: Option<String>,
    /// Kernel release for `.uname` (default: read from the kernel's boot header).
    #[arg(long, conflicts_with = "from")]
    pub uname: Option<String>,
    /// SBAT text or @FILE to merge (default: ukify's `uki` line); may be repeated.
    #[arg(long, conflicts_with = "from")]
    pub sbat: Vec<String>,
    /// systemd version of the stub, if its .sdmagic does not say.
    #[arg(long, conflicts_with = "from")]
    pub stub_version: Option<u32>,
    /// Write the merged .sbat over the stub's own even where it overlaps the next section
    /// (ukify's layout; systemd 252 stubs then warn at boot). Default: move it after the stub's sections.
    #[arg(long)]
    pub allow_section_overlap: bool,
    /// Output UKI (unsigned).
    #[arg(short, long, required_unless_present = "bootloader_out")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub pcr: pcr::PcrArgs,
    #[command(flatten)]
    pub image: from_image::FromImageArgs,
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
        return from_image::run(
            &args.image,
            args.stub.as_deref(),
            &args.pcr,
            args.allow_section_overlap,
            args.output.as_deref(),
        );
    }
    args.image.refuse_image_only_flags()?;
    let (stub, stub_name) = match (&args.image.stub_from, &args.stub) {
        (Some(image), _) => (
            from_image::stub_from_image(image, &args.image)?,
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
    let plan = args.pcr.plan()?;
    let pcr_signing = args.pcr.signing(&plan)?;

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

    args.pcr.print_measurements(&plan, &inputs)
}
