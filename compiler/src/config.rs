//! Compiler settings, kept apart from the code that uses them.

/// Settings for checking and compiling a policy.
#[derive(Clone, Debug)]
pub struct Config {
    /// Largest DFA (in bytes of transition tables) one automaton may take;
    /// past it, a regex is `invalid-regex` and a set of routes is split.
    pub dfa_size_limit: usize,
    /// Largest working memory for determinization, in bytes.
    pub determinize_size_limit: usize,
    /// A DFA of route regexes whose dense form takes more bytes than this
    /// is written sparse: far smaller, slower to walk (identity, host and
    /// value DFAs stay dense: sparse ones made peer classification and
    /// egress decisions over twice as slow at 1,000 routes).
    pub sparse_dfa_above: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            dfa_size_limit: 16 << 20,
            determinize_size_limit: 64 << 20,
            sparse_dfa_above: 64 << 10,
        }
    }
}

impl Config {
    /// The default settings (16 MiB per automaton).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the per-automaton size limit in bytes.
    pub fn dfa_size_limit(mut self, bytes: usize) -> Self {
        self.dfa_size_limit = bytes;
        self
    }
}
