//! Replays the checked-in formatter fuzz corpus (`fuzz/corpus/format`) and
//! the parser's (`fuzz/corpus/parse`) through the formatter's checks.

#[test]
fn format_corpus() {
    assert!(sluice_testkit::replay_corpus("format", sluice_lang::format::fuzz_format) > 0);
    assert!(sluice_testkit::replay_corpus("parse", sluice_lang::format::fuzz_format) > 0);
}
