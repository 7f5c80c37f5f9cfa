//! Policy texts that several test suites use, each kept once in
//! `testkit/fixtures/`.

/// The example policy of the specification (section 3), verbatim: a mesh,
/// a server with two routes, three rules, egress and a service with
/// backends, retries and a circuit breaker. `conformance/spec-example.toml`
/// holds the same text (a test below checks it).
pub const SPEC_EXAMPLE: &str = include_str!("../fixtures/spec-example.sluice");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_conformance_file_holds_the_same_spec_example() {
        let path = crate::repository().join("conformance/spec-example.toml");
        let text = std::fs::read_to_string(&path).expect("conformance/spec-example.toml");
        let policy = text
            .split_once("policy = '''\n")
            .and_then(|(_, rest)| rest.split_once("'''"))
            .map(|(policy, _)| policy)
            .expect("a `policy = '''...'''` entry");
        assert_eq!(policy, SPEC_EXAMPLE);
    }
}
