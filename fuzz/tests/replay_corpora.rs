//! Replays every seed corpus file through its fuzz target body on stable Rust, so the test
//! command catches regressions on inputs the fuzzers found or we wrote by hand.

use std::path::Path;

#[test]
fn every_corpus_file_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (name, target) in mediakit_fuzz::TARGETS {
        let dir = root.join(name);
        let entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|error| panic!("corpus {}: {error}", dir.display()))
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(!entries.is_empty(), "corpus {name} has no seeds");
        for entry in entries {
            let data = std::fs::read(entry.path()).unwrap();
            target(&data);
        }
        println!(
            "{name}: {} inputs replayed",
            std::fs::read_dir(&dir).unwrap().count()
        );
    }
}
