//! Replays the checked-in parser fuzz corpus (`fuzz/corpus/parse`).

#[test]
fn parse_corpus() {
    assert!(sluice_testkit::replay_corpus("parse", sluice_lang::fuzz_parse) > 0);
}
