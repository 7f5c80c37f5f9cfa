//! The bundle layout as data, and its fingerprint.
//!
//! [`TABLES`] lists, in order, every field of the tables section: what the
//! encoder (`encode.rs`) writes and what the loader reads. Both name each field
//! they write or read, and tests check them against this schema: the
//! loader's reads ([`loader_reads`]) and the encoder's writes must both equal
//! [`walk`]'s reading of the same bytes, field for field. The
//! [`fingerprint`] hashes the schema (header, tables and automaton inputs);
//! [`LAYOUTS`] commits the fingerprint of each format version, and a test
//! fails when the fingerprint of [`FORMAT_VERSION`](super::FORMAT_VERSION) is not the committed one:
//! a layout change must bump the version (`docs/bundle.md`, "Format
//! versions").

use super::read::Reader;
use super::{Bundle, LoadError, HEADER_LEN};

/// How one field is encoded (all integers little-endian).
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// One byte.
    U8,
    /// One byte, 0 or 1.
    Bool,
    /// Two bytes.
    U16,
    /// Four bytes.
    U32,
    /// Eight bytes.
    U64,
    /// Sixteen bytes.
    U128,
    /// A u32 length, then that many bytes.
    Bytes,
    /// A u32 length, then that many bytes of UTF-8.
    Str,
    /// A boolean; when 1, a [`Kind::Str`].
    OptStr,
    /// A boolean; when 1, a u64.
    OptU64,
    /// A u32 count, then that many u32.
    Ids,
    /// A u32 count, then that many [`Kind::Ids`].
    IdLists,
    /// A u32 count, then that many port ranges (u16 first, u16 last).
    Ports,
    /// A u32 count, then that many records of these fields.
    List(&'static [Field]),
    /// A boolean; when 1, a record of these fields.
    Opt(&'static [Field]),
    /// A u8 code choosing a variant (code = index), then its fields.
    Tag(&'static [Variant]),
    /// These fields, in order (a named group; no bytes of its own).
    Record(&'static [Field]),
}

/// A named field of the tables.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    /// The field's name.
    pub name: &'static str,
    /// Its encoding.
    pub kind: Kind,
}

/// A variant of a [`Kind::Tag`]: its name and the fields that follow the code.
#[derive(Clone, Copy, Debug)]
pub struct Variant {
    /// The variant's name.
    pub name: &'static str,
    /// The fields after the code.
    pub fields: &'static [Field],
}

const fn f(name: &'static str, kind: Kind) -> Field {
    Field { name, kind }
}

const fn v(name: &'static str, fields: &'static [Field]) -> Variant {
    Variant { name, fields }
}

/// The header, bytes 0..48, as `(offset, size, field)`; not read field by
/// field but part of the fingerprint.
pub const HEADER: &[(usize, usize, &str)] = &[
    (0, 8, "magic SLUICEB\\0"),
    (8, 4, "format version u32"),
    (12, 4, "flags u32, zero"),
    (16, 8, "xxh3-64 of bytes 24.. u64"),
    (24, 8, "total length u64"),
    (32, 4, "tables length u32"),
    (36, 4, "automaton count u32"),
    (40, 8, "automaton directory offset u64"),
    (HEADER_LEN, 0, "tables; then, 8-aligned, the directory (u64 offset, u64 length per automaton); then the automata, each 8-aligned"),
];

/// What each kind of automaton is walked over; part of the fingerprint.
pub const AUTOMATA: &[(&str, &str)] = &[
    ("all", "regex-automata 0.4 DFA, little-endian, anchored start, MatchKind::All, whole input then end of input; dense, or sparse when it starts with the sparse label (written for route regex sets only; value automata must be dense)"),
    ("value", "a header value (values joined with `,`) or a percent-decoded query value"),
    ("identity", "the path of a SPIFFE ID after its trust domain"),
    ("route paths", "the normalized path"),
    ("literal paths", "table, no automaton: exact matches the whole normalized path; prefix p matches p and every path starting with p then `/`"),
    ("literal identities", "table, no automaton, valid SPIFFE IDs only: whole matches the path after the trust domain; one-segment matches the key, `/` and one segment; segments matches the key and one or more `/`-segments"),
    ("egress hosts", "the host, lowercase, without one trailing dot, bytes in reverse order"),
    ("networks", "IPv4 in the u32 space, IPv6 in u128; an address carrying IPv4 is looked up as IPv4"),
];

/// `allow`, `deny`, `audit`, `authenticated`: server, mesh and egress defaults.
const DEFAULT: &[Variant] = &[
    v("allow", &[]),
    v("deny", &[]),
    v("audit", &[]),
    v("authenticated", &[]),
];

const AUTOMATON: &[Field] = &[f("automaton", Kind::U32)];

const NET_TABLE: &[Field] = &[
    f(
        "ipv4 intervals",
        Kind::List(&[
            f("first", Kind::U128),
            f("last", Kind::U128),
            f("atoms", Kind::Ids),
        ]),
    ),
    f(
        "ipv6 intervals",
        Kind::List(&[
            f("first", Kind::U128),
            f("last", Kind::U128),
            f("atoms", Kind::Ids),
        ]),
    ),
    f("atom targets", Kind::IdLists),
];

const RETRY: &[Field] = &[
    f("attempts", Kind::U32),
    f(
        "on",
        Kind::List(&[f(
            "condition",
            Kind::Tag(&[
                v("server-error", &[f("value", Kind::U16)]),
                v("gateway-error", &[f("value", Kind::U16)]),
                v("reset", &[f("value", Kind::U16)]),
                v("status", &[f("value", Kind::U16)]),
                v("grpc", &[f("value", Kind::U16)]),
            ]),
        )]),
    ),
    f("per-try timeout ms", Kind::OptU64),
    f("budget percent", Kind::U8),
];

const COND: &[Field] = &[
    f("name", Kind::Str),
    f(
        "value",
        Kind::Tag(&[
            v("exact", &[f("value", Kind::Bytes)]),
            v("regex", &[f("value automaton", Kind::U32)]),
            v("present", &[]),
        ]),
    ),
];

const ROUTE: &[Field] = &[
    f("name", Kind::OptStr),
    f("methods", Kind::List(&[f("method", Kind::Str)])),
    f("headers", Kind::List(COND)),
    f("queries", Kind::List(COND)),
    f("deny rules", Kind::Ids),
    f("allow rules", Kind::Ids),
    f(
        "backends",
        Kind::List(&[f("backend", Kind::U32), f("weight", Kind::U32)]),
    ),
    f("timeout ms", Kind::OptU64),
    f("retry", Kind::Opt(RETRY)),
];

const ROUTE_SET: &[Field] = &[
    f(
        "literal paths",
        Kind::List(&[
            f("path", Kind::Bytes),
            f("exact routes", Kind::Ids),
            f("prefix routes", Kind::Ids),
        ]),
    ),
    f("regex path automata", Kind::List(AUTOMATON)),
    f("regex pattern routes", Kind::IdLists),
    f("routes without path", Kind::Ids),
    f("routes", Kind::List(ROUTE)),
];

/// The tables section, in order.
pub const TABLES: &[Field] = &[
    f("mesh default", Kind::Tag(DEFAULT)),
    f("value automata", Kind::List(AUTOMATON)),
    f("clause count", Kind::U32),
    f("authenticated clauses", Kind::Ids),
    f(
        "trust domains",
        Kind::List(&[
            f("trust domain", Kind::Str),
            f(
                "literal identities",
                Kind::List(&[
                    f("identity path", Kind::Bytes),
                    f("whole clauses", Kind::Ids),
                    f("one-segment clauses", Kind::Ids),
                    f("segments clauses", Kind::Ids),
                ]),
            ),
            f("identity automata", Kind::List(AUTOMATON)),
            f("pattern clauses", Kind::IdLists),
        ]),
    ),
    f("peer networks", Kind::Record(NET_TABLE)),
    f(
        "rules",
        Kind::List(&[
            f("name", Kind::Str),
            f("deny", Kind::Bool),
            f("clauses", Kind::Ids),
        ]),
    ),
    f(
        "servers",
        Kind::List(&[
            f("name", Kind::Str),
            f(
                "protocol",
                Kind::Tag(&[v("http", &[]), v("grpc", &[]), v("tcp", &[])]),
            ),
            f("default", Kind::Tag(DEFAULT)),
            f("ports", Kind::Ports),
            f("route set", Kind::Record(ROUTE_SET)),
        ]),
    ),
    f(
        "services",
        Kind::List(&[
            f("name", Kind::Str),
            f(
                "authorities",
                Kind::List(&[f("host", Kind::Str), f("port", Kind::U16)]),
            ),
            f("timeout ms", Kind::OptU64),
            f("retry", Kind::Opt(RETRY)),
            f(
                "circuit breaker",
                Kind::Opt(&[
                    f("consecutive failures", Kind::U32),
                    f("backoff min ms", Kind::U64),
                    f("backoff max ms", Kind::U64),
                    f("jitter percent", Kind::U8),
                ]),
            ),
            f(
                "backends",
                Kind::List(&[
                    f("name", Kind::Str),
                    f(
                        "endpoints",
                        Kind::List(&[f(
                            "endpoint",
                            Kind::Tag(&[
                                v("address", &[f("text", Kind::Str)]),
                                v("name", &[f("text", Kind::Str)]),
                            ]),
                        )]),
                    ),
                    f("identity", Kind::OptStr),
                    f("cluster", Kind::OptStr),
                    f("failover", Kind::OptU64),
                    f("max in flight", Kind::OptU64),
                ]),
            ),
            f("route set", Kind::Record(ROUTE_SET)),
        ]),
    ),
    f(
        "egress",
        Kind::Opt(&[
            f("default deny", Kind::Bool),
            f(
                "rules",
                Kind::List(&[
                    f("name", Kind::Str),
                    f("deny", Kind::Bool),
                    f("ports", Kind::Ports),
                    f("any destination", Kind::Bool),
                ]),
            ),
            f("host automata", Kind::List(AUTOMATON)),
            f("host pattern rules", Kind::IdLists),
            f("star rules", Kind::Ids),
            f("networks", Kind::Record(NET_TABLE)),
        ]),
    ),
];

/// The fingerprint of each format version's layout, oldest first. Version 1
/// changed layout several times without a bump and has none.
pub const LAYOUTS: &[(u32, u64)] = &[(2, 0x9111_8654_6f2f_79a2), (3, 0x0686_1258_0125_9a34)];

/// One primitive read or write of the tables, as the loader, the encoder
/// and [`walk`] log them: a [`Kind::List`] is its count ([`Prim::Len`]), a
/// [`Kind::Opt`] its flag ([`Prim::Bool`]), a [`Kind::Tag`] its code
/// ([`Prim::U8`]); the other kinds are one entry each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prim {
    /// [`Kind::U8`] or a tag's code.
    U8,
    /// [`Kind::Bool`] or an option's flag.
    Bool,
    /// [`Kind::U16`].
    U16,
    /// [`Kind::U32`].
    U32,
    /// [`Kind::U64`].
    U64,
    /// [`Kind::U128`].
    U128,
    /// [`Kind::Bytes`].
    Bytes,
    /// [`Kind::Str`].
    Str,
    /// [`Kind::OptStr`].
    OptStr,
    /// [`Kind::OptU64`].
    OptU64,
    /// [`Kind::Ids`].
    Ids,
    /// [`Kind::IdLists`].
    IdLists,
    /// [`Kind::Ports`].
    Ports,
    /// A list's count.
    Len,
}

/// A named primitive read or write.
pub type Access = (&'static str, Prim);

/// The schema as canonical text: header, automaton inputs and tables.
pub fn render() -> String {
    fn fields(out: &mut String, depth: usize, list: &[Field]) {
        for field in list {
            out.push_str(&"  ".repeat(depth));
            out.push_str(field.name);
            out.push(' ');
            match field.kind {
                Kind::List(inner) => {
                    out.push_str("list\n");
                    fields(out, depth + 1, inner);
                }
                Kind::Opt(inner) => {
                    out.push_str("option\n");
                    fields(out, depth + 1, inner);
                }
                Kind::Record(inner) => {
                    out.push_str("record\n");
                    fields(out, depth + 1, inner);
                }
                Kind::Tag(variants) => {
                    out.push_str("tag\n");
                    for (code, variant) in variants.iter().enumerate() {
                        out.push_str(&"  ".repeat(depth + 1));
                        out.push_str(&format!("{code} {}\n", variant.name));
                        fields(out, depth + 2, variant.fields);
                    }
                }
                other => out.push_str(&format!("{other:?}\n")),
            }
        }
    }
    let mut out = String::from("header\n");
    for (offset, size, what) in HEADER {
        out.push_str(&format!("  {offset} {size} {what}\n"));
    }
    out.push_str("automata\n");
    for (which, input) in AUTOMATA {
        out.push_str(&format!("  {which}: {input}\n"));
    }
    out.push_str("tables\n");
    fields(&mut out, 1, TABLES);
    out
}

/// The xxh3-64 of [`render`]: changes whenever the schema does.
pub fn fingerprint() -> u64 {
    xxhash_rust::xxh3::xxh3_64(render().as_bytes())
}

/// The tables section of bundle bytes whose header is intact.
fn tables(bytes: &[u8]) -> Result<&[u8], String> {
    let len = bytes
        .get(32..36)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or("no header")?;
    bytes
        .get(HEADER_LEN..HEADER_LEN + len)
        .ok_or_else(|| "the tables are truncated".to_string())
}

/// Reads the tables of `bytes` by [`TABLES`] alone, logging each primitive;
/// fails unless the schema accounts for every byte.
pub fn walk(bytes: &[u8]) -> Result<Vec<Access>, String> {
    fn record(r: &mut Reader<'_>, list: &[Field]) -> Result<(), String> {
        for field in list {
            let name = field.name;
            let e = |e: LoadError| format!("field `{name}`: {e}");
            match field.kind {
                Kind::U8 => {
                    r.u8(name).map_err(e)?;
                }
                Kind::Bool => {
                    r.bool(name).map_err(e)?;
                }
                Kind::U16 => {
                    r.u16(name).map_err(e)?;
                }
                Kind::U32 => {
                    r.u32(name).map_err(e)?;
                }
                Kind::U64 => {
                    r.u64(name).map_err(e)?;
                }
                Kind::U128 => {
                    r.u128(name).map_err(e)?;
                }
                Kind::Bytes => {
                    r.bytes(name).map_err(e)?;
                }
                Kind::Str => {
                    r.str(name).map_err(e)?;
                }
                Kind::OptStr => {
                    r.opt_str(name).map_err(e)?;
                }
                Kind::OptU64 => {
                    r.opt_u64(name).map_err(e)?;
                }
                Kind::Ids => {
                    r.ids(name, u32::MAX as usize).map_err(e)?;
                }
                Kind::IdLists => {
                    r.id_lists(name, u32::MAX as usize).map_err(e)?;
                }
                Kind::Ports => {
                    r.ports(name).map_err(e)?;
                }
                Kind::List(inner) => {
                    for _ in 0..r.len(name, 1).map_err(e)? {
                        record(r, inner)?;
                    }
                }
                Kind::Opt(inner) => {
                    if r.bool(name).map_err(e)? {
                        record(r, inner)?;
                    }
                }
                Kind::Tag(variants) => {
                    let code = r.u8(name).map_err(e)?;
                    let variant = variants
                        .get(code as usize)
                        .ok_or_else(|| format!("field `{name}`: unknown code {code}"))?;
                    record(r, variant.fields)?;
                }
                Kind::Record(inner) => record(r, inner)?,
            }
        }
        Ok(())
    }
    let mut r = Reader::new(tables(bytes)?);
    r.start_log();
    record(&mut r, TABLES)?;
    if !r.is_empty() {
        return Err("bytes left after the last field of the schema".into());
    }
    Ok(r.take_log())
}

/// Loads `bytes` as [`Bundle::from_bytes`] does, returning every primitive
/// the loader read from the tables, in order.
pub fn loader_reads(bytes: &[u8]) -> Result<Vec<Access>, LoadError> {
    Bundle::load(bytes, true).map(|(_, log)| log)
}

/// The first difference between two logs, as a message; `None` when equal.
pub fn compare(what: &str, got: &[Access], schema: &[Access]) -> Option<String> {
    let at = got.iter().zip(schema).position(|(a, b)| a != b);
    match at {
        Some(i) => Some(format!(
            "{what} disagrees with the schema at access {i}: {:?} where the schema has {:?} (previous: {:?})",
            got[i],
            schema[i],
            &schema[i.saturating_sub(3)..i]
        )),
        None if got.len() != schema.len() => Some(format!(
            "{what} made {} accesses where the schema has {}",
            got.len(),
            schema.len()
        )),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::FORMAT_VERSION;

    #[test]
    fn the_layout_of_this_version_is_the_committed_one() {
        let fp = fingerprint();
        let committed = LAYOUTS.iter().find(|(v, _)| *v == FORMAT_VERSION);
        // A version with a committed fingerprint is released: a new layout
        // needs the next version.
        let next = if committed.is_some() {
            FORMAT_VERSION + 1
        } else {
            FORMAT_VERSION
        };
        assert_eq!(
            committed.map(|(_, f)| *f),
            Some(fp),
            "the bundle layout (runtime/src/bundle/schema.rs) is not the committed layout of format \
             version {FORMAT_VERSION}: a layout change needs a new format version. Set FORMAT_VERSION \
             to {next} and add ({next}, {fp:#018x}) to LAYOUTS (docs/bundle.md, \"Format versions\"); \
             the schema now reads:\n{}",
            render()
        );
        assert!(LAYOUTS
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 != w[1].1));
        assert_eq!(LAYOUTS.last().map(|l| l.0), Some(FORMAT_VERSION));
    }

    #[test]
    fn the_fingerprint_sees_every_part_of_the_schema() {
        let text = render();
        for needle in [
            "0 allow",
            "3 authenticated",
            "egress option",
            "bytes in reverse order",
            "xxh3-64",
            "route set record",
            "max in flight OptU64",
        ] {
            assert!(text.contains(needle), "`{needle}` missing from:\n{text}");
        }
    }

    #[test]
    fn walking_needs_every_byte() {
        // A hand-written minimal table: mesh default deny, nothing else.
        let mut t = vec![1u8];
        t.extend_from_slice(&0u32.to_le_bytes()); // value automata
        t.extend_from_slice(&0u32.to_le_bytes()); // clause count
        t.extend_from_slice(&0u32.to_le_bytes()); // authenticated clauses
        t.extend_from_slice(&0u32.to_le_bytes()); // trust domains
        for _ in 0..3 {
            t.extend_from_slice(&0u32.to_le_bytes()); // v4, v6, targets
        }
        for _ in 0..3 {
            t.extend_from_slice(&0u32.to_le_bytes()); // rules, servers, services
        }
        t.push(0); // no egress
        let mut bytes = vec![0u8; HEADER_LEN];
        bytes[32..36].copy_from_slice(&(t.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&t);
        let log = walk(&bytes).expect("walks");
        assert_eq!(log.first(), Some(&("mesh default", Prim::U8)));
        assert_eq!(log.last(), Some(&("egress", Prim::Bool)));
        assert_eq!(log.len(), 12);
        // One byte more is not accounted for.
        bytes.push(0);
        bytes[32..36].copy_from_slice(&(t.len() as u32 + 1).to_le_bytes());
        assert!(walk(&bytes).is_err());
        // An unknown tag code is refused.
        bytes[HEADER_LEN] = 4;
        assert!(walk(&bytes).unwrap_err().contains("mesh default"));
    }
}
