//! Finding and loading the PKCS#11 module and choosing the token a URI names.
//!
//! Module: `module-path` in the URI, else `module-name` (looked up as p11-kit registers
//! modules), else `--pkcs11-module`, else `$BOOTSEAL_PKCS11_MODULE`, else p11-kit's proxy
//! module, which reaches every module p11-kit has registered. A module is loaded and
//! initialized once per process and shared, because PKCS#11 allows one `C_Initialize` per
//! application.

use super::{Pkcs11Error, Pkcs11Options, Pkcs11Uri};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error, RvError};
use cryptoki::slot::{Slot, SlotInfo, TokenInfo};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Environment variable naming the module when neither the URI nor a flag does.
pub const MODULE_ENV: &str = "BOOTSEAL_PKCS11_MODULE";

/// Modules loaded by this process, by path.
static LOADED: Mutex<Vec<(PathBuf, Pkcs11)>> = Mutex::new(Vec::new());

/// A loaded module and where its path came from.
pub struct Module {
    pub ctx: Pkcs11,
    pub path: PathBuf,
    pub origin: &'static str,
}

impl Module {
    /// `PATH (from ORIGIN)`, for messages.
    pub fn describe(&self) -> String {
        format!("{} (from {})", self.path.display(), self.origin)
    }
}

/// Directories where distributions install PKCS#11 modules and p11-kit's proxy.
fn library_dirs() -> Vec<PathBuf> {
    let triplet = format!("{}-linux-gnu", std::env::consts::ARCH);
    [
        format!("/usr/lib/{triplet}"),
        "/usr/lib64".into(),
        "/usr/lib".into(),
        "/usr/local/lib".into(),
    ]
    .into_iter()
    .map(PathBuf::from)
    .collect()
}

/// Where p11-kit's proxy module is installed (Debian: `p11-kit-modules`, Fedora: `p11-kit`).
fn proxy_candidates() -> Vec<PathBuf> {
    library_dirs()
        .into_iter()
        .map(|d| d.join("p11-kit-proxy.so"))
        .collect()
}

/// `module-name=NAME`: p11-kit's registration `NAME.module` (its `module:` line), else
/// `NAME.so`/`libNAME.so` in a `pkcs11` directory.
fn find_by_name(name: &str) -> Result<PathBuf, Pkcs11Error> {
    let mut searched = Vec::new();
    for conf_dir in ["/etc/pkcs11/modules", "/usr/share/p11-kit/modules"] {
        let conf = Path::new(conf_dir).join(format!("{name}.module"));
        searched.push(conf.display().to_string());
        if let Ok(text) = std::fs::read_to_string(&conf)
            && let Some(m) = text.lines().find_map(|l| {
                l.trim()
                    .strip_prefix("module:")
                    .map(|v| v.trim().to_string())
            })
        {
            let p = PathBuf::from(&m);
            if p.is_absolute() {
                return Ok(p);
            }
            // Relative names live in p11-kit's module directory.
            for d in library_dirs() {
                let c = d.join("pkcs11").join(&p);
                if c.exists() {
                    return Ok(c);
                }
            }
        }
    }
    for d in library_dirs() {
        for file in [format!("{name}.so"), format!("lib{name}.so")] {
            let c = d.join("pkcs11").join(&file);
            searched.push(c.display().to_string());
            if c.exists() {
                return Ok(c);
            }
        }
    }
    Err(Pkcs11Error::ModuleName {
        name: name.to_string(),
        searched: searched.join(", "),
    })
}

/// The module to load for `uri`, and where that choice came from (for errors).
pub fn resolve(
    uri: &Pkcs11Uri,
    opts: &Pkcs11Options,
) -> Result<(PathBuf, &'static str), Pkcs11Error> {
    if let Some(p) = &uri.module_path {
        if p.is_dir()
            && let Some(n) = &uri.module_name
        {
            for file in [format!("{n}.so"), format!("lib{n}.so")] {
                if p.join(&file).exists() {
                    return Ok((p.join(file), "module-path and module-name in the URI"));
                }
            }
        }
        return Ok((p.clone(), "module-path in the URI"));
    }
    if let Some(n) = &uri.module_name {
        return Ok((find_by_name(n)?, "module-name in the URI"));
    }
    if let Some(p) = &opts.module {
        return Ok((p.clone(), "--pkcs11-module"));
    }
    if let Some(p) = std::env::var_os(MODULE_ENV).filter(|v| !v.is_empty()) {
        return Ok((PathBuf::from(p), MODULE_ENV));
    }
    let candidates = opts
        .proxy_candidates
        .clone()
        .unwrap_or_else(proxy_candidates);
    match candidates.iter().find(|p| p.exists()) {
        Some(p) => Ok((p.clone(), "p11-kit's proxy module")),
        None => Err(Pkcs11Error::NoModule {
            searched: candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Load and initialize the module for `uri` (once per process).
pub fn load(uri: &Pkcs11Uri, opts: &Pkcs11Options) -> Result<Module, Pkcs11Error> {
    let (path, origin) = resolve(uri, opts)?;
    let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, ctx)) = loaded.iter().find(|(p, _)| *p == path) {
        return Ok(Module {
            ctx: ctx.clone(),
            path,
            origin,
        });
    }
    let load_err = |reason: String| Pkcs11Error::ModuleLoad {
        path: path.display().to_string(),
        origin,
        reason,
    };
    if !path.exists() {
        return Err(load_err("no such file".into()));
    }
    let ctx = Pkcs11::new(&path).map_err(|e| match e {
        Error::LibraryLoading(l) => load_err(l.to_string()),
        other => load_err(format!("not a PKCS#11 module ({other})")),
    })?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(load_err(format!("C_Initialize failed: {e}"))),
    }
    loaded.push((path.clone(), ctx.clone()));
    Ok(Module { ctx, path, origin })
}

/// A slot with a token in it.
pub struct Token {
    pub slot: Slot,
    pub slot_info: Option<SlotInfo>,
    pub info: TokenInfo,
}

impl Token {
    pub fn label(&self) -> &str {
        self.info.label().trim_end()
    }

    /// `'label' (slot N, manufacturer 'M', model 'X', serial 'S')`.
    pub fn describe(&self) -> String {
        if !self.info.token_initialized() {
            return format!("an uninitialized token (slot-id {})", self.slot.id());
        }
        format!(
            "'{}' (slot-id {}, manufacturer '{}', model '{}', serial '{}')",
            self.label(),
            self.slot.id(),
            self.info.manufacturer_id().trim_end(),
            self.info.model().trim_end(),
            self.info.serial_number().trim_end()
        )
    }

    fn matches(&self, uri: &Pkcs11Uri) -> bool {
        let eq = |want: &Option<String>, have: &str| {
            want.as_deref().is_none_or(|w| w == have.trim_end())
        };
        eq(&uri.token, self.info.label())
            && eq(&uri.manufacturer, self.info.manufacturer_id())
            && eq(&uri.model, self.info.model())
            && eq(&uri.serial, self.info.serial_number())
            && uri.slot_id.is_none_or(|id| id == self.slot.id())
            && eq(
                &uri.slot_description,
                self.slot_info
                    .as_ref()
                    .map(|s| s.slot_description())
                    .unwrap_or(""),
            )
            && eq(
                &uri.slot_manufacturer,
                self.slot_info
                    .as_ref()
                    .map(|s| s.manufacturer_id())
                    .unwrap_or(""),
            )
    }
}

fn check_library(module: &Module, uri: &Pkcs11Uri) -> Result<(), Pkcs11Error> {
    if uri.library_manufacturer.is_none()
        && uri.library_description.is_none()
        && uri.library_version.is_none()
    {
        return Ok(());
    }
    let info = module
        .ctx
        .get_library_info()
        .map_err(|e| Pkcs11Error::Module {
            path: module.path.display().to_string(),
            reason: format!("C_GetInfo failed: {e}"),
        })?;
    let version = (
        info.library_version().major(),
        info.library_version().minor(),
    );
    let ok = uri
        .library_manufacturer
        .as_deref()
        .is_none_or(|m| m == info.manufacturer_id().trim_end())
        && uri
            .library_description
            .as_deref()
            .is_none_or(|d| d == info.library_description().trim_end())
        && uri.library_version.is_none_or(|v| v == version);
    if ok {
        return Ok(());
    }
    Err(Pkcs11Error::Module {
        path: module.path.display().to_string(),
        reason: format!(
            "the module is '{}' by '{}' version {}.{}, not the library the URI names",
            info.library_description().trim_end(),
            info.manufacturer_id().trim_end(),
            version.0,
            version.1
        ),
    })
}

/// The one token `uri` names; with no token attributes, the only token present.
pub fn select_token(module: &Module, uri: &Pkcs11Uri) -> Result<Token, Pkcs11Error> {
    check_library(module, uri)?;
    let module_err = |reason: String| Pkcs11Error::Module {
        path: module.path.display().to_string(),
        reason,
    };
    let slots = module
        .ctx
        .get_slots_with_token()
        .map_err(|e| module_err(format!("C_GetSlotList failed: {e}")))?;
    let mut tokens = Vec::new();
    for slot in slots {
        let info = module
            .ctx
            .get_token_info(slot)
            .map_err(|e| module_err(format!("C_GetTokenInfo failed: {e}")))?;
        let slot_info = module.ctx.get_slot_info(slot).ok();
        tokens.push(Token {
            slot,
            slot_info,
            info,
        });
    }
    let list = |ts: &[&Token]| {
        if ts.is_empty() {
            "none".to_string()
        } else {
            ts.iter()
                .map(|t| t.describe())
                .collect::<Vec<_>>()
                .join("; ")
        }
    };
    let all: Vec<&Token> = tokens.iter().collect();
    let matching: Vec<usize> = (0..tokens.len())
        .filter(|&i| tokens[i].matches(uri))
        .collect();
    match matching.len() {
        1 => Ok(tokens.swap_remove(matching[0])),
        0 => Err(Pkcs11Error::NoToken {
            module: module.describe(),
            selector: uri.token_text(),
            found: list(&all),
        }),
        _ => Err(Pkcs11Error::AmbiguousToken {
            module: module.describe(),
            found: list(&matching.iter().map(|&i| &tokens[i]).collect::<Vec<_>>()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_resolution_order() {
        let none = Pkcs11Options {
            proxy_candidates: Some(vec![PathBuf::from("/nonexistent/p11-kit-proxy.so")]),
            ..Default::default()
        };
        let flag = Pkcs11Options {
            module: Some("/flag.so".into()),
            ..none.clone()
        };
        let with_path = Pkcs11Uri::parse("pkcs11:token=t?module-path=/uri.so").unwrap();
        let bare = Pkcs11Uri::parse("pkcs11:token=t").unwrap();
        assert_eq!(
            resolve(&with_path, &flag).unwrap(),
            (PathBuf::from("/uri.so"), "module-path in the URI")
        );
        assert_eq!(
            resolve(&bare, &flag).unwrap(),
            (PathBuf::from("/flag.so"), "--pkcs11-module")
        );
        // The environment variable is read by other tests' processes too; only check the
        // no-module error when it is unset here.
        if std::env::var_os(MODULE_ENV).is_none() {
            let e = resolve(&bare, &none).unwrap_err().to_string();
            assert!(e.contains("no PKCS#11 module"), "{e}");
            assert!(e.contains("/nonexistent/p11-kit-proxy.so"), "{e}");
        }
    }
}
