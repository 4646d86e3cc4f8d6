//! The two ends of a sync: a registry repository or an OCI layout directory, optionally narrowed
//! to one tag; listing their tags, naming one tag's image, and reading what a destination tag
//! records about how it was sealed.

use crate::manifest::Document;
use crate::reference::ImageRef;
use crate::registry::RegistryOptions;
use crate::source::{self, ImageSource, SourceError};
use std::path::PathBuf;

/// A repository of tagged images.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Repo {
    /// `docker://HOST/REPO[:TAG]`
    Registry {
        registry: String,
        repository: String,
        tag: Option<String>,
    },
    /// `oci:DIR[:TAG]`
    Layout { dir: PathBuf, tag: Option<String> },
}

impl Repo {
    /// Parses `--from`/`--to` (`what` names the flag in errors).
    pub fn parse(s: &str, what: &str) -> Result<Repo, String> {
        let image = ImageRef::parse(s).map_err(|e| format!("{what}: {e}"))?;
        match image {
            ImageRef::Registry(r) => {
                if r.digest().is_some() {
                    return Err(format!(
                        "{what} {s:?}: a digest names no tag to sync; give a repository or REPO:TAG"
                    ));
                }
                // The parser fills in `latest`; only a tag the user wrote counts.
                let name = s.strip_prefix("docker://").unwrap_or(s);
                let last = name.rsplit('/').next().unwrap_or(name);
                let explicit = last.contains(':');
                Ok(Repo::Registry {
                    registry: r.registry().to_owned(),
                    repository: r.repository().to_owned(),
                    tag: explicit.then(|| r.tag().map(str::to_owned)).flatten(),
                })
            }
            ImageRef::OciLayout { dir, tag } => Ok(Repo::Layout { dir, tag }),
            ImageRef::OciArchive { .. } => Err(format!(
                "{what} {s:?}: oci-archive: is not supported by sync (use oci:DIR or docker://)"
            )),
        }
    }

    /// The single tag the reference named, if any.
    pub fn single_tag(&self) -> Option<&str> {
        match self {
            Repo::Registry { tag, .. } | Repo::Layout { tag, .. } => tag.as_deref(),
        }
    }

    /// The repository without a tag, for messages.
    pub fn name(&self) -> String {
        match self {
            Repo::Registry {
                registry,
                repository,
                ..
            } => format!("docker://{registry}/{repository}"),
            Repo::Layout { dir, .. } => format!("oci:{}", dir.display()),
        }
    }

    /// The image `tag` of this repository.
    pub fn image(&self, tag: &str) -> ImageRef {
        match self {
            Repo::Registry {
                registry,
                repository,
                ..
            } => ImageRef::Registry(oci_client::Reference::with_tag(
                registry.clone(),
                repository.clone(),
                tag.to_owned(),
            )),
            Repo::Layout { dir, .. } => ImageRef::OciLayout {
                dir: dir.clone(),
                tag: Some(tag.to_owned()),
            },
        }
    }

    /// The tags to consider: the one named, else every tag (registry order, or the layout's
    /// `index.json` order).
    pub fn tags(&self, opts: &RegistryOptions) -> Result<Vec<String>, SourceError> {
        if let Some(t) = self.single_tag() {
            return Ok(vec![t.to_owned()]);
        }
        match self {
            Repo::Registry {
                registry,
                repository,
                ..
            } => source::list_tags(
                &oci_client::Reference::with_tag(
                    registry.clone(),
                    repository.clone(),
                    "latest".into(),
                ),
                opts,
            ),
            Repo::Layout { dir, .. } => layout_tags(dir),
        }
    }

    /// The document `tag` points at here, or None when it does not exist or cannot be read
    /// (then the tag is sealed again, which rewrites the same bytes if it was up to date).
    pub fn existing(&self, tag: &str, opts: &RegistryOptions) -> Option<Document> {
        let image = self.image(tag);
        if let Repo::Layout { dir, .. } = self
            && !dir.join("index.json").is_file()
        {
            return None;
        }
        let source = source::open(
            &image,
            &source::SourceOptions {
                registry: opts.clone(),
            },
        )
        .ok()?;
        source.root_manifest().ok()
    }
}

/// The `org.opencontainers.image.ref.name` values of a layout's `index.json`, in order, once each.
fn layout_tags(dir: &std::path::Path) -> Result<Vec<String>, SourceError> {
    let name = format!("oci:{}", dir.display());
    let bytes = std::fs::read(dir.join("index.json"))
        .map_err(|e| SourceError::new(&name, format!("cannot read index.json: {e}")))?;
    let index = Document::parse(bytes, None)
        .map_err(|e| SourceError::new(&name, format!("index.json: {e}")))?;
    crate::source::oci_layout::layout_tags(&index)
        .map_err(|e| SourceError::new(&name, format!("index.json: {e}")))
}

/// Whether every image `source` holds for `platforms` (the first one for a plain manifest, as
/// `seal` picks) is labelled a bootc image (`containers.bootc` or `ostree.bootable`).
pub fn is_bootc(
    source: &dyn ImageSource,
    root: &Document,
    platforms: &[crate::manifest::Platform],
) -> Result<bool, SourceError> {
    let chosen = match root.kind {
        crate::manifest::DocumentKind::Image => &platforms[..platforms.len().min(1)],
        crate::manifest::DocumentKind::Index => platforms,
    };
    for platform in chosen {
        let image = source::resolve(source, platform)?;
        let labels = image
            .config
            .get("config")
            .and_then(|c| c.get("Labels"))
            .and_then(serde_json::Value::as_object);
        let bootc = labels.is_some_and(|l| {
            l.contains_key("containers.bootc") || l.contains_key("ostree.bootable")
        });
        if !bootc {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_repositories_and_single_tags() {
        let r = Repo::parse("docker://127.0.0.1:5000/a/b", "--from").unwrap();
        assert_eq!(r.single_tag(), None);
        assert_eq!(r.name(), "docker://127.0.0.1:5000/a/b");
        let r = Repo::parse("docker://127.0.0.1:5000/a/b:v1", "--from").unwrap();
        assert_eq!(r.single_tag(), Some("v1"));
        assert_eq!(r.image("v2").to_string(), "docker://127.0.0.1:5000/a/b:v2");
        let r = Repo::parse("oci:/tmp/x", "--to").unwrap();
        assert_eq!(r.single_tag(), None);
        assert_eq!(r.image("t").to_string(), "oci:/tmp/x:t");
        assert!(Repo::parse("oci-archive:/tmp/x.tar", "--to").is_err());
        let d = format!("docker://h:1/r@sha256:{}", "a".repeat(64));
        assert!(Repo::parse(&d, "--from").unwrap_err().contains("digest"));
    }
}
