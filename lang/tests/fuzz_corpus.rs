//! Replays the checked-in parser fuzz corpus (`fuzz/corpus/parse`).

#[test]
fn parse_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/parse");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("corpus entry").path();
        if path.is_file() {
            sluice_lang::fuzz_parse(&std::fs::read(&path).expect("corpus file"));
            n += 1;
        }
    }
    assert!(n > 0);
}
