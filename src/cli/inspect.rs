//! `bootseal inspect`: flags for [`bootseal::uki::inspect`], text or JSON output.

use super::read_input;
use anyhow::Context;
use bootseal::uki;
use std::path::PathBuf;

/// Show a UKI's sections, cmdline, uname, os-release name, signatures and PCR 11.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// UKI or other PE image.
    pub file: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run `inspect`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let image = read_input(&args.file, "image")?;
    let r = uki::inspect(&image).with_context(|| format!("{}", args.file.display()))?;
    // The composefs argument as the initramfs's parser (composefs-boot) reads it.
    let composefs = r.cmdline.as_deref().map(bootseal::cmdline::read_composefs);
    if args.json {
        let mut v = serde_json::to_value(&r)?;
        v["composefs"] = match &composefs {
            Some(Ok(arg)) => serde_json::to_value(arg)?,
            Some(Err(e)) => serde_json::json!({ "error": e.to_string() }),
            None => serde_json::Value::Null,
        };
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("file:        {}", args.file.display());
    println!("arch:        {}", r.arch.unwrap_or("unknown"));
    if let Some(v) = r.stub_version {
        println!("stub:        systemd-stub {v}");
    }
    println!("sections:");
    println!(
        "  {:<9} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "name", "vaddr", "vsize", "rawptr", "rawsize", "flags"
    );
    for s in &r.sections {
        println!(
            "  {:<9} {:>#10x} {:>#10x} {:>#10x} {:>#10x} {:>#10x}",
            s.name,
            s.virtual_address,
            s.virtual_size,
            s.pointer_to_raw_data,
            s.size_of_raw_data,
            s.characteristics
        );
    }
    let show = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            println!("{k:<12} {v}");
        }
    };
    show("cmdline:", &r.cmdline);
    match &composefs {
        Some(Ok(arg)) => println!(
            "composefs:   {}{}{}",
            arg.digest_hex,
            arg.declared_erofs_version
                .map(|v| format!(" (EROFS v{v})"))
                .unwrap_or_default(),
            if arg.insecure {
                " INSECURE: fs-verity optional"
            } else {
                ""
            }
        ),
        Some(Err(bootseal::cmdline::CmdlineError::Missing)) | None => {}
        Some(Err(e)) => println!("composefs:   REFUSED: {e}"),
    }
    show("uname:", &r.uname);
    show("os NAME:", &r.os_release_name);
    show("os PRETTY:", &r.os_release_pretty_name);
    println!("digest:      sha256:{}", r.image_digest);
    if let Some(p) = r
        .pcr11
        .as_ref()
        .and_then(|j| j.get("sha256"))
        .and_then(|a| a.as_array())
    {
        for e in p {
            let phase = e
                .get("phase")
                .and_then(|v| v.as_str())
                .unwrap_or("(sections)");
            println!(
                "pcr11:       sha256={} {phase}",
                e["hash"].as_str().unwrap_or("")
            );
        }
    }
    if r.signatures.is_empty() {
        println!("signatures:  none");
    }
    for s in &r.signatures {
        match (&s.signer_subject, &s.problem) {
            (Some(subj), None) => println!(
                "signature {}: valid, signer {subj}, issuer {}",
                s.index,
                s.signer_issuer.as_deref().unwrap_or("?")
            ),
            (_, Some(p)) => println!("signature {}: INVALID: {p}", s.index),
            _ => {}
        }
    }
    Ok(())
}
