//! `bootseal build-addon --cmdline TEXT -o NAME.addon.efi`: a UKI add-on, as `ukify build`
//! without `--linux` makes one, from a stub file or an image's own add-on stub.

use super::build_uki::text_or_file;
use super::options::{RegistryArgs, parse_platform};
use super::{read_pe, write_output};
use anyhow::{Context, bail};
use bootseal::manifest::Platform;
use bootseal::reference::ImageRef;
use bootseal::uki::{self, AddonInputs};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kernel arguments the add-on appends: TEXT (whitespace-normalised, as ukify) or @FILE
    /// (verbatim). A composefs argument is refused: only the sealed UKI may carry one
    #[arg(long)]
    cmdline: String,
    /// systemd's add-on stub (addonx64.efi.stub / addonaa64.efi.stub, systemd-boot-efi >= 254)
    #[arg(long, conflicts_with = "from")]
    stub: Option<PathBuf>,
    /// Take the add-on stub from this image (/usr/lib/systemd/boot/efi/addon<arch>.efi.stub)
    #[arg(long, value_name = "IMAGE")]
    from: Option<String>,
    /// Platform to select from a multi-arch --from index
    #[arg(long, default_value = "linux/amd64", value_parser = parse_platform)]
    platform: Platform,
    /// SBAT text or @FILE (repeatable; default: ukify's uki-addon line)
    #[arg(long)]
    sbat: Vec<String>,
    /// Output add-on (unsigned; sign it with `bootseal sign`)
    #[arg(short, long)]
    output: PathBuf,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let stub = match (&args.stub, &args.from) {
        (Some(p), _) => read_pe(p, "add-on stub")?,
        (None, Some(image)) => {
            let image = ImageRef::parse(image).map_err(anyhow::Error::msg)?;
            bootseal::seal::addon_stub_from_image(
                &image,
                &args.registry.source_options(),
                &args.platform,
            )?
        }
        (None, None) => bail!("give --stub FILE or --from IMAGE"),
    };
    let cmdline = if args.cmdline.starts_with('@') {
        text_or_file(&args.cmdline, "cmdline file")?
    } else {
        uki::normalize_cmdline(&args.cmdline).into_bytes()
    };
    let text = String::from_utf8(cmdline.clone()).context("--cmdline is not UTF-8 text")?;
    let name = args
        .output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    bootseal::cmdline::check_addon_cmdline(&text, &name).map_err(anyhow::Error::msg)?;
    let sbat = args
        .sbat
        .iter()
        .map(|s| {
            text_or_file(s, "SBAT file")
                .and_then(|b| String::from_utf8(b).context("SBAT text is not UTF-8"))
        })
        .collect::<anyhow::Result<Vec<String>>>()?;
    let addon = uki::build_addon(&AddonInputs {
        stub: &stub,
        cmdline: &cmdline,
        sbat: (!sbat.is_empty()).then(|| sbat.iter().map(String::as_str).collect()),
    })
    .context("building the add-on")?;
    write_output(&args.output, &addon)
}
