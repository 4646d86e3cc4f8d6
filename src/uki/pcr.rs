//! PCR 11 prediction: replays what systemd-stub measures into PCR 11 for a UKI, and what
//! `systemd-pcrextend` adds at the boot phases afterwards, for the SHA-1/256/384/512 banks.
//!
//! Behaviour matched (systemd 257.3 `src/boot/stub.c` `measure_sections`,
//! `src/measure/measure.c`): the stub walks the `UnifiedSection` enum order of
//! `src/fundamental/uki.h` (not the PE order) and, for every section present with non-zero
//! size, extends `H(name || NUL)` then `H(VirtualSize bytes of data)`; `.pcrsig` is never
//! measured. Which sections a stub knows depends on its version (`.uname`/`.sbat` since 254,
//! `.ucode` since 256, `.profile`/`.dtbauto`/`.hwids` since 257, `.efifw` since 258). Each
//! boot-phase word is extended as `H(word)` without NUL. `extend(x)`: `PCR = H(PCR || x)`.
//! Output shape follows `systemd-measure calculate --json`.

use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};

/// A TPM PCR bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Bank {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Bank {
    /// All banks, in the order `systemd-measure` reports them.
    pub const ALL: [Bank; 4] = [Bank::Sha1, Bank::Sha256, Bank::Sha384, Bank::Sha512];

    /// Lower-case name used as JSON key (`sha256`).
    pub fn name(self) -> &'static str {
        match self {
            Bank::Sha1 => "sha1",
            Bank::Sha256 => "sha256",
            Bank::Sha384 => "sha384",
            Bank::Sha512 => "sha512",
        }
    }

    /// Parse a bank name (case-insensitive, as `--pcr-banks` accepts).
    pub fn parse(s: &str) -> Option<Bank> {
        Bank::ALL
            .into_iter()
            .find(|b| b.name().eq_ignore_ascii_case(s))
    }

    /// TPM2 algorithm identifier (TPM2_ALG_ID) of the bank's hash.
    pub fn tpm_alg(self) -> u16 {
        match self {
            Bank::Sha1 => 0x0004,
            Bank::Sha256 => 0x000B,
            Bank::Sha384 => 0x000C,
            Bank::Sha512 => 0x000D,
        }
    }

    /// Hash `data` with the bank's algorithm.
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        self.hash_parts(&[data])
    }

    /// Hash the concatenation of `parts`.
    pub fn hash_parts(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            d.finalize().to_vec()
        }
        match self {
            Bank::Sha1 => run::<Sha1>(parts),
            Bank::Sha256 => run::<Sha256>(parts),
            Bank::Sha384 => run::<Sha384>(parts),
            Bank::Sha512 => run::<Sha512>(parts),
        }
    }

    fn size(self) -> usize {
        match self {
            Bank::Sha1 => 20,
            Bank::Sha256 => 32,
            Bank::Sha384 => 48,
            Bank::Sha512 => 64,
        }
    }
}

/// The canonical measuring order (`UnifiedSection`), each with the first stub version
/// that measures it.
const CANONICAL_SECTIONS: &[(&str, u32)] = &[
    (".linux", 0),
    (".osrel", 0),
    (".cmdline", 0),
    (".initrd", 0),
    (".ucode", 256),
    (".splash", 0),
    (".dtb", 0),
    (".uname", 254),
    (".sbat", 254),
    (".pcrpkey", 0),
    (".profile", 257),
    (".dtbauto", 257),
    (".hwids", 257),
    (".efifw", 258),
];

/// The sections a stub of major version `stub_version` measures, in measuring order.
pub fn measured_sections(stub_version: u32) -> Vec<&'static str> {
    CANONICAL_SECTIONS
        .iter()
        .filter(|(_, since)| stub_version >= *since)
        .map(|(n, _)| *n)
        .collect()
}

/// The phase paths `systemd-measure` uses when none are given.
pub const DEFAULT_PHASES: [&str; 4] = [
    "enter-initrd",
    "enter-initrd:leave-initrd",
    "enter-initrd:leave-initrd:sysinit",
    "enter-initrd:leave-initrd:sysinit:ready",
];

/// Predicted PCR 11 for one bank and one phase path ("" = sections only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcrValue {
    pub bank: Bank,
    pub phase: String,
    pub value: Vec<u8>,
}

fn extend(bank: Bank, pcr: &mut Vec<u8>, digest: &[u8]) {
    *pcr = bank.hash_parts(&[pcr, digest]);
}

/// PCR 11 after the stub has measured `sections` (name, measured bytes), for one bank.
pub fn sections_value(bank: Bank, stub_version: u32, sections: &[(&str, &[u8])]) -> Vec<u8> {
    let mut pcr = vec![0u8; bank.size()];
    for name in measured_sections(stub_version) {
        // The stub looks sections up by name and uses the first match.
        let Some((_, data)) = sections.iter().find(|(n, _)| *n == name) else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        let mut name_z = name.as_bytes().to_vec();
        name_z.push(0);
        extend(bank, &mut pcr, &bank.hash(&name_z));
        extend(bank, &mut pcr, &bank.hash(data));
    }
    pcr
}

/// Extend `start` by every word of a colon-separated phase path.
pub fn phase_value(bank: Bank, start: &[u8], phase: &str) -> Vec<u8> {
    let mut pcr = start.to_vec();
    for word in phase.split(':').filter(|w| !w.is_empty()) {
        extend(bank, &mut pcr, &bank.hash(word.as_bytes()));
    }
    pcr
}

/// Predict PCR 11 for every bank and phase path.
pub fn predict(
    stub_version: u32,
    sections: &[(&str, &[u8])],
    banks: &[Bank],
    phases: &[&str],
) -> Vec<PcrValue> {
    let mut out = Vec::new();
    for &bank in banks {
        let base = sections_value(bank, stub_version, sections);
        for phase in phases {
            out.push(PcrValue {
                bank,
                phase: (*phase).to_string(),
                value: phase_value(bank, &base, phase),
            });
        }
    }
    out
}

/// JSON in the shape of `systemd-measure calculate --json`:
/// `{"sha256":[{"phase":"enter-initrd","pcr":11,"hash":"…"}, …], …}`.
pub fn to_json(values: &[PcrValue]) -> serde_json::Value {
    let mut obj = serde_json::Map::new();
    for v in values {
        let mut entry = serde_json::Map::new();
        if !v.phase.is_empty() {
            entry.insert("phase".into(), v.phase.clone().into());
        }
        entry.insert("pcr".into(), 11.into());
        entry.insert("hash".into(), hex::encode(&v.value).into());
        obj.entry(v.bank.name())
            .or_insert_with(|| serde_json::Value::Array(Vec::new()))
            .as_array_mut()
            .expect("bank entry is an array")
            .push(entry.into());
    }
    obj.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known-answer vector computed independently by systemd-measure 257.3
    // (`systemd-measure calculate --linux=… --osrel=… …`).
    fn kat_sections() -> Vec<(&'static str, Vec<u8>)> {
        let sbat = b"sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\nuki,1,UKI,uki,1,https://uapi-group.org/specifications/specs/unified_kernel_image/\n\0".to_vec();
        vec![
            (".linux", b"MZ-fake-kernel".to_vec()),
            (".osrel", b"ID=test\n".to_vec()),
            (".cmdline", b"composefs=abc rw".to_vec()),
            (".initrd", b"initrd-bytes".to_vec()),
            (".uname", b"6.1.0-test".to_vec()),
            (".sbat", sbat),
        ]
    }

    fn predict_kat(bank: Bank, phases: &[&str]) -> Vec<String> {
        let owned = kat_sections();
        let s: Vec<(&str, &[u8])> = owned.iter().map(|(n, d)| (*n, d.as_slice())).collect();
        predict(257, &s, &[bank], phases)
            .into_iter()
            .map(|v| hex::encode(v.value))
            .collect()
    }

    #[test]
    fn kat_sha256_all_phases() {
        let got = predict_kat(
            Bank::Sha256,
            &[
                "",
                "enter-initrd",
                "enter-initrd:leave-initrd",
                "enter-initrd:leave-initrd:sysinit",
                "enter-initrd:leave-initrd:sysinit:ready",
            ],
        );
        assert_eq!(
            got,
            [
                "7f7fdc147300942a7d701a36c8c3044c19d55b71d56c591dbb8b3a6f34121f69",
                "f79c679d9711a03b6c4c7644c892d5852d85ba51e28a1e8b74d4ebfca5d3f60f",
                "f1c35d4613431faf6414344a2a0a89949757b6cd1d92f0c8a148b232fd60f263",
                "364ef6ff8313e7ef3cb78d2051d653fb0133910899b8de843444463773818a5d",
                "2091752a68c2b8b6019d837d855bc2f4c22f49d26608270ec34171778815bf4f",
            ]
        );
    }

    #[test]
    fn kat_sha1() {
        assert_eq!(
            predict_kat(Bank::Sha1, &["", "enter-initrd"]),
            [
                "a8117f757e4716aa37d9170cd5577b8b9890c55b",
                "959ee905061de2b3d1518a76ed698a6d281f497d",
            ]
        );
    }

    #[test]
    fn stub_252_ignores_uname_and_sbat() {
        let owned = kat_sections();
        let s: Vec<(&str, &[u8])> = owned.iter().map(|(n, d)| (*n, d.as_slice())).collect();
        let without: Vec<(&str, &[u8])> = s
            .iter()
            .filter(|(n, _)| *n != ".uname" && *n != ".sbat")
            .cloned()
            .collect();
        assert_eq!(
            sections_value(Bank::Sha256, 252, &s),
            sections_value(Bank::Sha256, 257, &without)
        );
        assert_ne!(
            sections_value(Bank::Sha256, 252, &s),
            sections_value(Bank::Sha256, 257, &s)
        );
    }

    #[test]
    fn v258_measures_efifw() {
        let s: Vec<(&str, &[u8])> = vec![(".linux", b"k"), (".efifw", b"fw")];
        assert_ne!(
            sections_value(Bank::Sha256, 258, &s),
            sections_value(Bank::Sha256, 257, &s)
        );
        assert_eq!(measured_sections(258).last(), Some(&".efifw"));
    }
}
