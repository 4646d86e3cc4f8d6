//! Shell completions, manual pages and `--version`, all generated from the one clap definition:
//! bash parses the bash script, zsh and fish theirs (installed by .ci/run; where they are not,
//! their scripts' content is checked), `man` and groff render the pages without warnings, and
//! `--version` names the composefs-rs pin and the EROFS default.

use crate::common;

use common::{bootseal, require_tool, run_ok, stdout_of};
use std::path::Path;
use std::process::Command;

fn installed(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// Every subcommand and a few flags must be offered.
fn assert_complete(script: &str, shell: &str) {
    for word in [
        "seal",
        "digest",
        "verify",
        "build-uki",
        "verify-pe",
        "completions",
        "man",
        "--erofs-version",
        "--from",
        "--digestfile",
    ] {
        // fish names long options without their dashes (`-l erofs-version`).
        let word = if shell == "fish" {
            word.trim_start_matches("--")
        } else {
            word
        };
        assert!(script.contains(word), "{shell} completion lacks {word}");
    }
}

/// `shell -n` (parse without running) on the script.
fn parses(shell: &str, script: &Path) {
    run_ok(Command::new(shell).arg("-n").arg(script));
}

#[test]
fn completions_parse_in_their_shells() {
    require_tool("bash");
    let tmp = common::scratch();
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout_of(bootseal().args(["completions", shell]));
        assert_complete(&script, shell);
        let file = tmp.path().join(format!("bootseal.{shell}"));
        std::fs::write(&file, &script).unwrap();
        match shell {
            "bash" => {
                parses("bash", &file);
                // Sourcing it registers the completion function for `bootseal`.
                let out = stdout_of(
                    Command::new("bash")
                        .arg("-c")
                        .arg(format!("source {} && complete -p bootseal", file.display())),
                );
                assert!(
                    out.contains("_bootseal") && out.ends_with("bootseal\n"),
                    "{out}"
                );
            }
            "zsh" if installed("zsh") => parses("zsh", &file),
            "zsh" => assert!(script.starts_with("#compdef bootseal"), "{script}"),
            "fish" if installed("fish") => parses("fish", &file),
            _ => assert!(script.contains("complete -c bootseal"), "{script}"),
        }
    }
    let bad = bootseal().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid value 'tcsh'"));
}

/// groff's warnings (all of them, `-ww`) about a page, and `man -l`'s rendering of it.
fn render(page: &Path) -> String {
    require_tool("groff");
    require_tool("man");
    let out = Command::new("groff")
        // -k: preconv, as man runs it, for non-ASCII help text
        .args(["-k", "-man", "-Tutf8", "-ww", "-z"])
        .arg(page)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "groff warns about {}",
        page.display()
    );
    stdout_of(
        Command::new("man")
            .args(["-P", "cat", "-l"])
            .arg(page)
            .env("MANWIDTH", "100")
            .env("LC_ALL", "C.UTF-8"),
    )
}

#[test]
fn man_pages_render() {
    let tmp = common::scratch();
    let page = tmp.path().join("bootseal.1");
    std::fs::write(&page, stdout_of(bootseal().arg("man"))).unwrap();
    let text = render(&page);
    for word in [
        "NAME",
        "SYNOPSIS",
        "SUBCOMMANDS",
        "bootseal-seal(1)",
        "VERSION",
    ] {
        assert!(text.contains(word), "bootseal(1) lacks {word}:\n{text}");
    }
    assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");

    let dir = tmp.path().join("man1");
    run_ok(bootseal().arg("man").arg("--out-dir").arg(&dir));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for want in [
        "bootseal.1",
        "bootseal-seal.1",
        "bootseal-digest.1",
        "bootseal-completions.1",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
    for n in &names {
        render(&dir.join(n));
    }
    let seal = render(&dir.join("bootseal-seal.1"));
    for flag in ["--from", "--to", "--key", "--erofs-version", "--digestfile"] {
        assert!(seal.contains(flag), "bootseal-seal(1) lacks {flag}");
    }
}

#[test]
fn version_names_the_composefs_pin_and_erofs_default() {
    let text = stdout_of(bootseal().arg("--version"));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        format!("bootseal {}", env!("CARGO_PKG_VERSION")),
        "{text}"
    );
    // The version named is the pin in Cargo.toml, so the text cannot silently go stale.
    let manifest: toml::Value = toml::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap(),
    )
    .unwrap();
    let dep = &manifest["dependencies"]["composefs"];
    let pin = dep
        .as_str()
        .or_else(|| dep.get("version").and_then(toml::Value::as_str))
        .unwrap()
        .trim_start_matches('=');
    assert_eq!(
        lines[1],
        format!("composefs digest: composefs-rs {pin} (default; 0.9.4 with --composefs-compat)")
    );
    assert_eq!(
        bootseal::digest::DigestOptions::default().erofs_version,
        bootseal::digest::ErofsVersion::V1
    );
    assert_eq!(
        lines[2],
        "EROFS format: V1 (default; V2 with --erofs-version 2)"
    );
    // -V stays the one-line short form.
    assert_eq!(
        stdout_of(bootseal().arg("-V")),
        format!("bootseal {}\n", env!("CARGO_PKG_VERSION"))
    );
}
