//! A Fedora-size bootc image, generated deterministically: the bootable test base (real Debian
//! kernel, stub, systemd-boot) plus 62 layers of ~3,300 entries each, about 215,000 entries and
//! 2.5 GB unpacked in all, gzip and zstd.
//!
//! The shape follows what a Fedora bootc base looks like after rechunking (~65 layers, most files
//! under 4 KiB, some tens of KiB, a few MiB; shared directories such as /usr/bin, /usr/lib64 and
//! the locale tree filled by many layers; symlinks, hardlinks, file capabilities, a few files
//! replaced and deleted by later layers). Contents are text-like (a word list) or binary-like
//! (random bytes with runs of zeros), so layers compress about 2:1 as real ones do. Everything
//! derives from one seed: the same image, byte for byte, on every machine.
//!
//! Built on first use (about a minute on two cores) and cached under the target directory.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::image_builder::{BuiltImage, BuiltLayer, Compression, E, OciImage, TarLayer};

pub const LAYERS: usize = 62;
pub const FILES_PER_LAYER: usize = 3250;
const SEED: u64 = 0x5EA1_F00D_2026_1202;
const TAG: &str = "fedora-scale";

/// xorshift64*: small, fast and the same everywhere.
struct Rng(u64);

impl Rng {
    fn new(a: u64, b: u64) -> Self {
        let mut r = Rng(SEED
            ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ b.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        r.0 |= 1;
        r.next();
        r
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const SYLLABLES: &[&str] = &[
    "lib", "gtk", "py", "net", "sys", "core", "ka", "ro", "mi", "te", "x", "data", "conf", "util",
    "gl", "qt", "font", "icon", "dbus", "ssl", "z", "ar", "en", "ion", "er", "pa", "lo", "ve",
];
const WORDS: &[&str] = &[
    "the", "return", "if", "else", "self", "import", "def", "struct", "int", "void", "const",
    "static", "value", "error", "None", "true", "false", "for", "in", "while", "printf", "license",
    "GNU", "General", "Public", "msgid", "msgstr", "<svg", "path", "d=", "0.5",
];
const LANGS: usize = 40;

fn word(rng: &mut Rng, parts: u64) -> String {
    (0..1 + rng.below(parts))
        .map(|_| SYLLABLES[rng.below(SYLLABLES.len() as u64) as usize])
        .collect()
}

/// Most files under 4 KiB, a fifth tens of KiB, a few hundred KiB, one in 600 a few MiB.
fn file_size(rng: &mut Rng) -> usize {
    match rng.below(1000) {
        0..=749 => rng.below(4096) as usize,
        750..=969 => 4096 + rng.below(28 * 1024) as usize,
        970..=998 => 32 * 1024 + rng.below(224 * 1024) as usize,
        _ => (1 << 20) + rng.below(3 << 20) as usize,
    }
}

fn contents(rng: &mut Rng, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 16);
    if rng.below(10) < 6 {
        while out.len() < size {
            out.extend_from_slice(WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes());
            out.push(if rng.below(9) == 0 { b'\n' } else { b' ' });
        }
    } else {
        while out.len() < size {
            let x = rng.next();
            if x & 7 == 0 {
                out.extend_from_slice(&[0; 24]);
            } else {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
    }
    out.truncate(size);
    out
}

/// The entries of generated layer `l` (0-based).
fn layer_entries(l: usize) -> Vec<E> {
    let mut rng = Rng::new(l as u64, 0);
    let pkg = format!("{}{l}", word(&mut rng, 2));
    let mut dirs = vec![
        format!("usr/lib64/{pkg}"),
        format!("usr/share/{pkg}"),
        format!("usr/share/doc/{pkg}"),
        format!("usr/lib/python3.13/site-packages/{pkg}"),
    ];
    for d in 0..24 {
        dirs.push(format!("usr/share/{pkg}/{}{d}", word(&mut rng, 3)));
        dirs.push(format!(
            "usr/lib/python3.13/site-packages/{pkg}/{}{d}",
            word(&mut rng, 2)
        ));
    }
    let mut entries = vec![
        E::dir("usr/lib64"),
        E::dir("usr/share"),
        E::dir("usr/share/doc"),
        E::dir("usr/share/locale"),
        E::dir("usr/lib/python3.13"),
        E::dir("usr/lib/python3.13/site-packages"),
    ];
    entries.extend(dirs.iter().map(|d| E::dir(d)));
    let mut files: Vec<String> = Vec::new();
    for f in 0..FILES_PER_LAYER {
        let path = match rng.below(100) {
            0..=5 => format!("usr/bin/{}-{pkg}{f}", word(&mut rng, 2)),
            6..=14 => format!("usr/lib64/lib{}{f}.so.{}", word(&mut rng, 2), rng.below(9)),
            15..=19 => {
                let lang = rng.below(LANGS as u64);
                let dir = format!("usr/share/locale/l{lang}/LC_MESSAGES");
                if !entries.iter().any(|e| e.path == dir) {
                    entries.push(E::dir(&format!("usr/share/locale/l{lang}")));
                    entries.push(E::dir(&dir));
                }
                format!("{dir}/{pkg}-{f}.mo")
            }
            _ => {
                let dir = &dirs[rng.below(dirs.len() as u64) as usize];
                format!(
                    "{dir}/{}_{f}.{}",
                    word(&mut rng, 4),
                    ["py", "h", "svg", "txt", "json"][rng.below(5) as usize]
                )
            }
        };
        let size = file_size(&mut rng);
        let mut e = E::file(&path, contents(&mut rng, size));
        if path.starts_with("usr/bin/") {
            e = e.mode(0o755);
            if f % 97 == 0 {
                // cap_net_raw=ep as a VFS v2 capability (what setcap writes).
                e = e.xattr(
                    "security.capability",
                    &[0, 0, 0, 2, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                );
            }
        }
        entries.push(e);
        files.push(path);
    }
    // Symlinks (~3%) and hardlinks (~1%) to this layer's files.
    for s in 0..FILES_PER_LAYER / 33 {
        let target = &files[rng.below(files.len() as u64) as usize];
        entries.push(E::symlink(
            &format!("usr/lib64/{pkg}/link{s}"),
            &format!("/{target}"),
        ));
    }
    for h in 0..FILES_PER_LAYER / 100 {
        let target = files[rng.below(files.len() as u64) as usize].clone();
        entries.push(E::hardlink(
            &format!("usr/share/doc/{pkg}/hard{h}"),
            &target,
        ));
    }
    // Later layers replace and delete a few files of earlier ones, as updates do.
    if l > 0 && l.is_multiple_of(5) {
        let mut old = Rng::new(l as u64 - 1, 0);
        let old_pkg = format!("{}{}", word(&mut old, 2), l - 1);
        entries.push(E::whiteout(&format!("usr/share/doc/{old_pkg}/hard0")));
        entries.push(E::dir(&format!("usr/share/doc/{old_pkg}")));
        entries.push(E::file(
            &format!("usr/share/doc/{old_pkg}/NEWS"),
            contents(&mut rng, 3000),
        ));
    }
    entries
}

/// The image, built on first use and cached.
pub fn fedora_scale_image() -> BuiltImage {
    static BUILD: Mutex<()> = Mutex::new(());
    let _guard = BUILD.lock().unwrap_or_else(|p| p.into_inner());
    let dir = super::cache_dir().join("fedora-scale-v1");
    if dir.join("complete").exists() {
        return BuiltImage::load(&dir, TAG);
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (base, _, _, _) = super::bootc_image::layers(&dir, Vec::new());
    let mut layers = base.write(&dir, "base").layers;
    let next = AtomicUsize::new(0);
    let count = AtomicUsize::new(0);
    let built: Mutex<Vec<Option<BuiltLayer>>> = Mutex::new(vec![None; LAYERS]);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let l = next.fetch_add(1, Ordering::SeqCst);
                    if l >= LAYERS {
                        break;
                    }
                    let entries = layer_entries(l);
                    count.fetch_add(entries.len(), Ordering::SeqCst);
                    let tar = TarLayer::with(entries);
                    let compression = if l % 3 == 2 {
                        Compression::Zstd
                    } else {
                        Compression::Gzip
                    };
                    let layer =
                        OciImage::write_streamed_layer(&dir, compression, |w| w.write_all(&tar));
                    built.lock().unwrap()[l] = Some(layer);
                }
            });
        }
    });
    layers.extend(built.into_inner().unwrap().into_iter().map(Option::unwrap));
    let image = OciImage::new().write_metadata(&dir, TAG, layers);
    std::fs::write(dir.join("entries"), count.into_inner().to_string()).unwrap();
    std::fs::write(dir.join("complete"), b"").unwrap();
    image
}

/// Entries in the generated layers (tar records, whiteouts included), as the build counted them.
pub fn generated_entries(image: &BuiltImage) -> usize {
    std::fs::read_to_string(image.dir.join("entries"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}
