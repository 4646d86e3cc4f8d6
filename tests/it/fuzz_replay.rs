//! Replays every file under `testdata/fuzz/<target>/` (seed corpora and the reproducers of
//! crashes found by fuzzing) through the fuzz targets' own entry points, so plain `cargo test`
//! keeps them fixed. The fuzzers themselves run in CI through `fuzz/run-ci.sh`.

#[allow(dead_code)]
#[path = "../../fuzz/entry_points.rs"]
pub mod entry_points;

use std::path::Path;

#[test]
fn every_fuzz_corpus_file_replays_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/fuzz");
    let mut replayed = 0;
    for (name, target) in entry_points::TARGETS {
        let dir = root.join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no corpus for {name}");
        for file in files {
            let data = std::fs::read(&file).unwrap();
            // Named first: a stack overflow or abort ends the process without unwinding.
            eprintln!("replaying {}", file.display());
            target(&data);
            replayed += 1;
        }
    }
    // Every directory under testdata/fuzz belongs to a target.
    for entry in std::fs::read_dir(&root).unwrap() {
        let name = entry.unwrap().file_name();
        assert!(
            entry_points::TARGETS.iter().any(|(t, _)| *t == name),
            "testdata/fuzz/{} is not a fuzz target",
            name.to_string_lossy()
        );
    }
    eprintln!("{replayed} corpus files replayed");
}
