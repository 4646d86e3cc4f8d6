//! UKI add-ons in a sealed image: built from the image's own add-on stub (`--addon-cmdline`) or
//! supplied (`--addon`), signed like the UKI, and placed where composefs-boot 0.9.0's
//! boot-resource discovery (`bootloader.rs`: `<uki>.efi.extra.d/*.addon.efi` beside the UKI in
//! `/boot/EFI/Linux`, and `/boot/loader/addons/*.addon.efi`) and systemd-stub (the same
//! directories on the ESP) find them. The command line the kernel will see, the UKI's plus every
//! add-on's in systemd-stub's order, is held to the sealed policy as a whole.

use super::SealOptions;
use crate::authenticode;
use crate::cmdline::{self, Expected};
use crate::layer_writer::LayerEntry;
use crate::signer::SignLabel;
use crate::uki::{self, AddonInputs};
use std::sync::Arc;

/// Where an add-on applies: to the sealed UKI only, or to every UKI on the ESP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AddonScope {
    /// `/boot/EFI/Linux/<kver>.efi.extra.d/` (composefs-boot `PEType::UkiAddon`).
    #[default]
    Uki,
    /// `/boot/loader/addons/` (composefs-boot `PEType::GlobalUkiAddon`).
    Global,
}

impl std::str::FromStr for AddonScope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "uki" => Ok(AddonScope::Uki),
            "global" => Ok(AddonScope::Global),
            _ => Err(format!(
                "unknown add-on scope {s:?} (expected uki or global)"
            )),
        }
    }
}

/// One add-on to seal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddonSource {
    /// Kernel arguments (ukify's text form), built into an add-on from the image's stub.
    Cmdline(String),
    /// An add-on built elsewhere: its file name (`NAME.addon.efi`) and bytes.
    File { name: String, bytes: Vec<u8> },
}

/// The systemd-stub release that loads add-ons: 254 introduced them (systemd NEWS, "CHANGES WITH
/// 254"); for global ones (`loader/addons/`) 255 is asked, conservatively, as 254's NEWS names
/// no location. Older stubs ignore add-ons, so their arguments would silently be lost.
const STUB_WITH_UKI_ADDONS: u32 = 254;
const STUB_WITH_GLOBAL_ADDONS: u32 = 255;

/// An add-on ready for the sealed layer: path in the image (no leading `/`), signed bytes, and
/// its `.cmdline` as systemd-stub will append it.
pub(crate) struct PlacedAddon {
    pub path: String,
    pub bytes: Vec<u8>,
    pub cmdline: String,
}

/// The directory (no leading `/`) add-ons of `scope` go to for the UKI of kernel `kver`.
pub fn addon_dir(scope: AddonScope, kver: &str) -> String {
    use crate::bootc_paths::{GLOBAL_ADDON_DIR, in_layer, uki};
    match scope {
        AddonScope::Uki => format!("{}.extra.d", in_layer(&uki(kver))),
        AddonScope::Global => in_layer(GLOBAL_ADDON_DIR).trim_end_matches('/').to_owned(),
    }
}

/// [`build`], then each add-on signed as [`signed`] says.
pub(crate) fn prepare(
    opts: &SealOptions,
    cx: &AddonContext<'_>,
) -> Result<Vec<PlacedAddon>, String> {
    let mut placed = build(opts, cx)?;
    for p in &mut placed {
        let name = p.path.rsplit('/').next().unwrap_or_default().to_owned();
        // An add-on's signature does not depend on the digest: the boot transform empties
        // /boot, so an offline signer can sign it in the first round.
        let label = SignLabel {
            id: opts.request_id(cx.platform, &format!("addon:{name}")),
            what: format!("Authenticode of add-on {}", p.path),
            after: Vec::new(),
        };
        p.bytes = signed(std::mem::take(&mut p.bytes), &name, opts, label)?;
    }
    Ok(placed)
}

/// Signs an add-on with the seal's signer unless it already verifies against the seal's
/// certificate; without a signer, an add-on must already verify (`seal --uki` with `--cert`).
fn signed(
    bytes: Vec<u8>,
    what: &str,
    opts: &SealOptions,
    label: SignLabel,
) -> Result<Vec<u8>, String> {
    let cert = opts
        .signer
        .as_ref()
        .map(|s| s.certificate().clone())
        .or_else(|| opts.cert.clone());
    if let Some(cert) = &cert
        && authenticode::verify(&bytes, cert).is_ok()
    {
        return Ok(bytes);
    }
    match &opts.signer {
        Some(signer) => {
            let already = authenticode::signatures(&bytes).is_ok_and(|s| !s.is_empty());
            authenticode::sign(&bytes, &signer.labelled(label), already)
                .map_err(|e| format!("signing add-on {what}: {e}"))
        }
        None if cert.is_some() => Err(format!(
            "add-on {what} is not signed by the --cert certificate, and there is no --key to sign it"
        )),
        None => Err(format!("add-on {what} cannot be signed: give --key/--cert")),
    }
}

/// The inputs [`build`] checks the add-ons against.
pub(crate) struct AddonContext<'a> {
    pub kver: &'a str,
    /// The platform sealed, for signing request ids.
    pub platform: &'a crate::manifest::Platform,
    /// The UKI's `.cmdline` and its systemd-stub version.
    pub uki_cmdline: &'a str,
    pub stub_version: Option<u32>,
    /// The image's add-on stub.
    pub addon_stub: Option<&'a [u8]>,
    /// Global add-ons the base image carries (path, bytes): kept, and part of the check.
    pub global_in_image: &'a [(String, Vec<u8>)],
    pub expected: Expected<'a>,
}

/// Builds (or takes) and checks the add-ons of `opts`, unsigned, in file-name order.
pub(crate) fn build(opts: &SealOptions, cx: &AddonContext<'_>) -> Result<Vec<PlacedAddon>, String> {
    let AddonContext {
        kver,
        platform: _,
        uki_cmdline,
        stub_version,
        addon_stub,
        global_in_image,
        expected,
    } = *cx;
    if !opts.addons.is_empty() {
        let needed = match opts.addon_scope {
            AddonScope::Uki => STUB_WITH_UKI_ADDONS,
            AddonScope::Global => STUB_WITH_GLOBAL_ADDONS,
        };
        match stub_version {
            Some(v) if v >= needed => {}
            Some(v) => {
                return Err(format!(
                    "the UKI's systemd-stub {v} cannot load {} add-ons (systemd >= {needed} does): \
                     the add-ons' arguments would be lost; use a newer stub (--stub)",
                    scope_name(opts.addon_scope)
                ));
            }
            None => {
                return Err(
                    "cannot tell whether the UKI's systemd-stub loads add-ons (no version in .sdmagic)"
                        .into(),
                );
            }
        }
    }
    let dir = addon_dir(opts.addon_scope, kver);
    let mut placed: Vec<PlacedAddon> = Vec::new();
    for (i, source) in opts.addons.iter().enumerate() {
        let (name, unsigned, line) = match source {
            AddonSource::Cmdline(text) => {
                let stub = addon_stub.ok_or_else(|| {
                    "--addon-cmdline: the image has no add-on stub \
                     (/usr/lib/systemd/boot/efi/addon<arch>.efi.stub, systemd-boot-efi >= 254); \
                     build one elsewhere and give --addon"
                        .to_owned()
                })?;
                let line = uki::normalize_cmdline(text);
                let name = format!("bootseal-{:02}.addon.efi", i + 1);
                cmdline::check_addon_cmdline(&line, &name)?;
                let bytes = uki::build_addon(&AddonInputs {
                    stub,
                    cmdline: line.as_bytes(),
                    sbat: None,
                })
                .map_err(|e| format!("building add-on {name}: {e}"))?;
                (name, bytes, line)
            }
            AddonSource::File { name, bytes } => {
                if !name.ends_with(".addon.efi") || name.contains('/') {
                    return Err(format!(
                        "add-on {name}: the file name must end in .addon.efi (systemd-stub and composefs-boot look for *.addon.efi)"
                    ));
                }
                let line = uki::addon_cmdline(bytes, name)?;
                cmdline::check_addon_cmdline(&line, name)?;
                (name.clone(), bytes.clone(), line)
            }
        };
        let path = format!("{dir}/{name}");
        if placed.iter().any(|p| p.path == path) {
            return Err(format!("two add-ons named {name}"));
        }
        placed.push(PlacedAddon {
            path,
            bytes: unsigned,
            cmdline: line,
        });
    }
    // The base image's own global add-ons are loaded too: check them the same way.
    let mut existing = Vec::new();
    for (path, bytes) in global_in_image {
        let line = uki::addon_cmdline(bytes, path)?;
        cmdline::check_addon_cmdline(&line, path)?;
        existing.push((path.trim_start_matches('/').to_owned(), line));
    }
    check_effective(uki_cmdline, &placed, &existing, expected)?;
    placed.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(placed)
}

fn scope_name(scope: AddonScope) -> &'static str {
    match scope {
        AddonScope::Uki => "per-UKI (<uki>.efi.extra.d)",
        AddonScope::Global => "global (loader/addons)",
    }
}

/// The kernel's command line as systemd-stub composes it (systemd-stub(7): the UKI's, then the
/// global add-ons', then the UKI's own, each directory by file name) must still read, with
/// composefs-boot's parser, as the sealed digest.
fn check_effective(
    uki_cmdline: &str,
    placed: &[PlacedAddon],
    existing: &[(String, String)],
    expected: Expected<'_>,
) -> Result<(), String> {
    let mut global: Vec<(&str, &str)> = existing
        .iter()
        .map(|(p, l)| (p.as_str(), l.as_str()))
        .collect();
    let mut per_uki: Vec<(&str, &str)> = Vec::new();
    for p in placed {
        let entry = (p.path.as_str(), p.cmdline.as_str());
        if p.path.starts_with("boot/loader/addons/") {
            global.push(entry);
        } else {
            per_uki.push(entry);
        }
    }
    let by_name = |v: &mut Vec<(&str, &str)>| v.sort_by_key(|(p, _)| p.rsplit('/').next());
    by_name(&mut global);
    by_name(&mut per_uki);
    let lines: Vec<&str> = global.iter().chain(&per_uki).map(|(_, l)| *l).collect();
    let effective = cmdline::effective_cmdline(uki_cmdline, &lines);
    cmdline::check_sealed(&effective, expected)
        .map(|_| ())
        .map_err(|e| format!("the command line with the add-ons ({effective}): {e}"))
}

/// The layer entries for `addons`: each directory the sealed layer does not already make
/// (`boot/EFI/Linux` and above are there), then the files, in order.
pub(crate) fn layer_entries(addons: Vec<PlacedAddon>) -> Vec<LayerEntry> {
    let mut out = Vec::new();
    let mut made: Vec<String> = Vec::new();
    for addon in addons {
        let dir = addon.path.rsplit_once('/').map_or("", |(d, _)| d);
        let mut missing = Vec::new();
        let mut d = dir;
        while d.starts_with("boot/") && !["boot/EFI", "boot/EFI/Linux"].contains(&d) {
            missing.push(d.to_owned());
            d = d.rsplit_once('/').map_or("", |(parent, _)| parent);
        }
        for path in missing.into_iter().rev() {
            if !made.contains(&path) {
                made.push(path.clone());
                out.push(LayerEntry::Directory {
                    path,
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                    mtime_nsec: 0,
                });
            }
        }
        out.push(LayerEntry::File {
            path: addon.path,
            mode: 0o644,
            uid: 0,
            gid: 0,
            content: Arc::from(addon.bytes),
        });
    }
    out
}
