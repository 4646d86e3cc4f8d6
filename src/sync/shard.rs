//! `--shard I/N`: a deterministic partition of tag names over N workers, so a job engine's
//! indexed workers (Kubernetes `JOB_COMPLETION_INDEX`, a CI matrix) together cover every tag once.

use sha2::{Digest, Sha256};

/// Worker `index` of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// `I/N`, or `env:VAR/N` with I read from the environment variable VAR.
    pub fn parse(s: &str) -> Result<Shard, String> {
        let (index, count) = s
            .rsplit_once('/')
            .ok_or_else(|| format!("--shard {s:?}: expected I/N or env:VAR/N"))?;
        let count: u64 = count
            .parse()
            .map_err(|_| format!("--shard {s:?}: N={count:?} is not a number"))?;
        let index_text = match index.strip_prefix("env:") {
            Some(var) => std::env::var(var)
                .map_err(|_| format!("--shard {s:?}: environment variable {var} is not set"))?,
            None => index.to_owned(),
        };
        let index: u64 = index_text.trim().parse().map_err(|_| {
            format!("--shard {s:?}: index {index_text:?} is not a non-negative number")
        })?;
        if count == 0 {
            return Err(format!("--shard {s:?}: N must be at least 1"));
        }
        if index >= count {
            return Err(format!(
                "--shard {s:?}: index {index} is not below N={count} (indexes run 0..N-1)"
            ));
        }
        Ok(Shard { index, count })
    }

    /// Whether `tag` is this worker's: the first 8 bytes of SHA-256(tag), big-endian, mod N —
    /// the same on every machine and release, unlike Rust's randomly seeded hashers.
    pub fn contains(&self, tag: &str) -> bool {
        shard_of(tag, self.count) == self.index
    }
}

/// The shard (0..count) `tag` belongs to.
pub fn shard_of(tag: &str, count: u64) -> u64 {
    let hash = Sha256::digest(tag.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    u64::from_be_bytes(first) % count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!(Shard::parse("1/3").unwrap(), Shard { index: 1, count: 3 });
        for bad in [
            "3/3",
            "0/0",
            "x/2",
            "1",
            "-1/2",
            "env:BOOTSEAL_TEST_UNSET_VAR/2",
        ] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn partition_is_exact_and_stable() {
        let tags: Vec<String> = (0..200).map(|i| format!("v{i}")).collect();
        for n in 1..6 {
            for t in &tags {
                let owners = (0..n)
                    .filter(|i| {
                        Shard {
                            index: *i,
                            count: n,
                        }
                        .contains(t)
                    })
                    .count();
                assert_eq!(owners, 1, "{t} in {n} shards");
            }
        }
        // Against coreutils' sha256sum, an independent SHA-256.
        for tag in ["latest", "v1.2.3", "stream10"] {
            let mut child = std::process::Command::new("sha256sum")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("sha256sum (coreutils)");
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(tag.as_bytes())
                .unwrap();
            let out = String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap();
            let first = u64::from_str_radix(&out[..16], 16).unwrap();
            assert_eq!(shard_of(tag, 7), first % 7, "{tag}");
        }
    }
}
