//! Image references in skopeo's transport syntax: `docker://HOST/REPO:TAG|@DIGEST` (or the bare
//! `HOST/REPO:TAG`), `oci:DIR[:TAG]` and `oci-archive:FILE[:TAG]` (containers-transports(5)).

use std::fmt;
use std::path::PathBuf;

/// Where an image lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageRef {
    /// An image in a registry; the name is kept as `oci_client::Reference` parses it.
    Registry(oci_client::Reference),
    /// An OCI image layout directory, with the `org.opencontainers.image.ref.name` to select.
    OciLayout { dir: PathBuf, tag: Option<String> },
    /// A tar archive of an OCI image layout.
    OciArchive { file: PathBuf, tag: Option<String> },
}

impl ImageRef {
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(rest) = s.strip_prefix("docker://") {
            return parse_registry(rest, s);
        }
        if let Some(rest) = s.strip_prefix("oci:") {
            let (dir, tag) = split_path_tag(rest, s)?;
            return Ok(ImageRef::OciLayout { dir, tag });
        }
        if let Some(rest) = s.strip_prefix("oci-archive:") {
            let (file, tag) = split_path_tag(rest, s)?;
            return Ok(ImageRef::OciArchive { file, tag });
        }
        if let Some((transport, _)) = s.split_once(':')
            && matches!(
                transport,
                "dir" | "docker-archive" | "docker-daemon" | "containers-storage"
            )
        {
            return Err(format!(
                "invalid image reference {s:?}: transport {transport}: is not supported \
                 (use docker://, oci: or oci-archive:)"
            ));
        }
        parse_registry(s, s)
    }

    /// The name `org.opencontainers.image.base.name` records: a registry reference
    /// (`HOST/REPO:TAG` or `HOST/REPO@DIGEST`); None for local layouts and archives.
    pub fn registry_name(&self) -> Option<String> {
        match self {
            ImageRef::Registry(r) => Some(r.whole()),
            ImageRef::OciLayout { .. } | ImageRef::OciArchive { .. } => None,
        }
    }

    /// The path/tag part used for the OCI layout name when writing to a layout.
    pub fn tag(&self) -> Option<&str> {
        match self {
            ImageRef::Registry(r) => r.tag(),
            ImageRef::OciLayout { tag, .. } | ImageRef::OciArchive { tag, .. } => tag.as_deref(),
        }
    }
}

fn parse_registry(name: &str, whole: &str) -> Result<ImageRef, String> {
    if name.is_empty() || name.contains("://") {
        return Err(format!("invalid image reference {whole:?}"));
    }
    name.parse::<oci_client::Reference>()
        .map(ImageRef::Registry)
        .map_err(|e| format!("invalid image reference {whole:?}: {e}"))
}

/// `DIR[:TAG]`: the last `:` separates a tag only when what follows looks like a tag, so
/// paths with colons still work when no tag is given (skopeo's rule is the same split).
fn split_path_tag(rest: &str, whole: &str) -> Result<(PathBuf, Option<String>), String> {
    if rest.is_empty() {
        return Err(format!("invalid image reference {whole:?}: no path given"));
    }
    match rest.rsplit_once(':') {
        Some((path, tag))
            if !path.is_empty()
                && !tag.is_empty()
                && !tag.contains('/')
                && tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) =>
        {
            Ok((PathBuf::from(path), Some(tag.to_owned())))
        }
        _ => Ok((PathBuf::from(rest), None)),
    }
}

/// The distribution spec's tag grammar: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    let word = |c: &u8| c.is_ascii_alphanumeric() || *c == b'_';
    (1..=128).contains(&b.len())
        && word(&b[0])
        && b[1..].iter().all(|c| word(c) || *c == b'.' || *c == b'-')
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageRef::Registry(r) => write!(f, "docker://{}", r.whole()),
            ImageRef::OciLayout { dir, tag } => {
                write!(f, "oci:{}", dir.display())?;
                tag.as_ref().map_or(Ok(()), |t| write!(f, ":{t}"))
            }
            ImageRef::OciArchive { file, tag } => {
                write!(f, "oci-archive:{}", file.display())?;
                tag.as_ref().map_or(Ok(()), |t| write!(f, ":{t}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_forms() {
        let ImageRef::Registry(r) = ImageRef::parse("docker://127.0.0.1:5000/a/b:v1").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (r.registry(), r.repository(), r.tag()),
            ("127.0.0.1:5000", "a/b", Some("v1"))
        );
        let d = format!("sha256:{}", "a".repeat(64));
        let ImageRef::Registry(r) = ImageRef::parse(&format!("localhost:5000/x@{d}")).unwrap()
        else {
            panic!()
        };
        assert_eq!(r.digest(), Some(d.as_str()));
        assert_eq!(r.repository(), "x");
        assert_eq!(
            ImageRef::parse("docker://127.0.0.1:5000/a/b:v1")
                .unwrap()
                .registry_name()
                .as_deref(),
            Some("127.0.0.1:5000/a/b:v1")
        );
    }

    #[test]
    fn layout_forms() {
        assert_eq!(
            ImageRef::parse("oci:/tmp/lay:latest").unwrap(),
            ImageRef::OciLayout {
                dir: "/tmp/lay".into(),
                tag: Some("latest".into())
            }
        );
        assert_eq!(
            ImageRef::parse("oci:/tmp/lay").unwrap(),
            ImageRef::OciLayout {
                dir: "/tmp/lay".into(),
                tag: None
            }
        );
        assert_eq!(
            ImageRef::parse("oci-archive:img.tar:v2").unwrap(),
            ImageRef::OciArchive {
                file: "img.tar".into(),
                tag: Some("v2".into())
            }
        );
        assert!(ImageRef::parse("oci:").is_err());
        assert_eq!(
            ImageRef::parse("oci:/tmp/lay:v1").unwrap().registry_name(),
            None
        );
        assert_eq!(
            ImageRef::parse("oci-archive:a.tar")
                .unwrap()
                .registry_name(),
            None
        );
        assert!(
            ImageRef::parse("docker-archive:x.tar")
                .unwrap_err()
                .contains("not supported")
        );
    }

    #[test]
    fn tags_follow_the_distribution_grammar() {
        for ok in ["v1", "latest", "_x", "1.2.3-rc_1", &"a".repeat(128)] {
            assert!(is_valid_tag(ok), "{ok}");
        }
        for bad in [
            "",
            ".v1",
            "-v1",
            "a/b",
            "../x",
            "v1\nv2: sealed",
            "a b",
            "ü",
            &"a".repeat(129),
        ] {
            assert!(!is_valid_tag(bad), "{bad:?}");
        }
    }
}
