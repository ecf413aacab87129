//! COMMAND DOCS's entries: what redis-server 7.0 documents for each
//! command (summary, since, group, complexity, doc flags, history, the
//! argument specs redis-cli builds its hints from), kept in `docs.txt`
//! (written by `scripts/gen-command-docs`; its header describes the
//! format) and parsed once on first use. Commands shardis has that Redis
//! 7.0 does not get a short entry from the table (`cmd::server::command`).

use crate::protocol::reply::Reply;
use std::sync::OnceLock;

const TEXT: &str = include_str!("docs.txt");

/// One node of a docs reply.
#[derive(Debug, PartialEq)]
pub enum Node {
    Map(Vec<(Node, Node)>),
    Array(Vec<Node>),
    Set(Vec<Node>),
    Bulk(String),
    Simple(String),
    Int(i64),
}

impl Node {
    fn text(&self) -> Option<&str> {
        match self {
            Node::Bulk(s) | Node::Simple(s) => Some(s),
            _ => None,
        }
    }

    /// Whether this is the string `s`.
    pub fn is(&self, s: &str) -> bool {
        self.text() == Some(s)
    }

    /// A map's value for `key`.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(kv) => kv.iter().find(|(k, _)| k.text() == Some(key)).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Reply with this node (maps and sets as RESP2 arrays there).
    pub fn emit(&self, r: &mut Reply) {
        match self {
            Node::Map(kv) => {
                r.map(kv.len());
                for (k, v) in kv {
                    k.emit(r);
                    v.emit(r);
                }
            }
            Node::Array(items) => {
                r.array(items.len());
                items.iter().for_each(|n| n.emit(r));
            }
            Node::Set(items) => {
                r.set(items.len());
                items.iter().for_each(|n| n.emit(r));
            }
            Node::Bulk(s) => r.bulk_str(s),
            Node::Simple(s) => r.simple(s),
            Node::Int(n) => r.int(*n),
        }
    }
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// Parse the node starting at `lines[*i]` (and its children).
fn parse_node(lines: &[&str], i: &mut usize) -> Result<Node, String> {
    let line = lines.get(*i).ok_or("docs.txt ends early")?.trim_start_matches(' ');
    let at = *i + 1;
    *i += 1;
    let (tag, rest) = line.split_at(line.char_indices().nth(1).map_or(line.len(), |(p, _)| p));
    let count = || rest.parse::<usize>().map_err(|_| format!("docs.txt line {at}: bad count {rest:?}"));
    Ok(match tag {
        "{" => {
            let n = count()?;
            let mut kv = Vec::with_capacity(n);
            for _ in 0..n {
                let k = parse_node(lines, i)?;
                kv.push((k, parse_node(lines, i)?));
            }
            Node::Map(kv)
        }
        "[" | "~" => {
            let n = count()?;
            let items = (0..n).map(|_| parse_node(lines, i)).collect::<Result<Vec<_>, _>>()?;
            if tag == "[" {
                Node::Array(items)
            } else {
                Node::Set(items)
            }
        }
        "\"" => Node::Bulk(unescape(rest)),
        "+" => Node::Simple(unescape(rest)),
        ":" => Node::Int(rest.parse().map_err(|_| format!("docs.txt line {at}: bad integer {rest:?}"))?),
        _ => return Err(format!("docs.txt line {at}: unknown node {line:?}")),
    })
}

/// The whole file: a map of command name to its docs.
pub fn parse(text: &str) -> Result<Node, String> {
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    let mut i = 0;
    let root = parse_node(&lines, &mut i)?;
    if i != lines.len() {
        return Err(format!("docs.txt: {} lines after the docs", lines.len() - i));
    }
    Ok(root)
}

fn all() -> Option<&'static Node> {
    static DOCS: OnceLock<Option<Node>> = OnceLock::new();
    DOCS.get_or_init(|| match parse(TEXT) {
        Ok(n) => Some(n),
        Err(e) => {
            crate::log(&format!("COMMAND DOCS: {e}; answering from the command table only"));
            None
        }
    })
    .as_ref()
}

/// Redis's docs of `name` (`container|sub` for a subcommand).
pub fn of(name: &str) -> Option<&'static Node> {
    let root = all()?;
    match name.split_once('|') {
        None => root.get(name),
        Some((parent, _)) => root.get(parent)?.get("subcommands")?.get(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_parses_and_has_get() {
        let root = parse(TEXT).expect("docs.txt");
        let get = root.get("get").expect("get");
        assert_eq!(get.get("since"), Some(&Node::Bulk("1.0.0".into())));
        assert!(of("config|get").is_some());
        assert_eq!(parse("{1\n  \"a\\nb\n  :3\n"), Ok(Node::Map(vec![(Node::Bulk("a\nb".into()), Node::Int(3))])));
        assert!(parse("{2\n  \"a\n").is_err());
    }
}
