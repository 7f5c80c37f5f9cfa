//! The per-case generator: the workspace's [`sluice_testkit::Rng`]
//! (splitmix64), seeded per case by proptest, with the draws of strings
//! that only this test needs.

/// Random choices for one case, from a 64-bit seed.
pub(crate) use sluice_testkit::Rng as Gen;

/// Draws of strings from pools.
pub(crate) trait Draw {
    /// One item of `xs`, owned.
    fn s(&mut self, xs: &[&str]) -> String;

    /// `n` distinct items of `xs` (fewer if `xs` is shorter).
    fn distinct(&mut self, xs: &[&str], n: usize) -> Vec<String>;

    /// `s` with its letters' case changed at random (all upper, title, mixed or unchanged).
    fn recase(&mut self, s: &str) -> String;
}

impl Draw for Gen {
    fn s(&mut self, xs: &[&str]) -> String {
        (*self.pick(xs)).to_string()
    }

    fn distinct(&mut self, xs: &[&str], n: usize) -> Vec<String> {
        let mut v = xs.to_vec();
        self.shuffle(&mut v);
        v.into_iter().take(n).map(String::from).collect()
    }

    fn recase(&mut self, s: &str) -> String {
        match self.below(4) {
            0 => s.to_string(),
            1 => s.to_ascii_uppercase(),
            2 => s.to_ascii_lowercase(),
            _ => s
                .chars()
                .map(|c| {
                    if self.chance(50) {
                        c.to_ascii_uppercase()
                    } else {
                        c.to_ascii_lowercase()
                    }
                })
                .collect(),
        }
    }
}
