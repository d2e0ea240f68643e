//! Where things are in the config text: byte offsets to lines, and the key path of every key
//! (`source[1].exclude`, `target[2].keep.daily`) with the spans of the key and of its value.
//!
//! Read from toml_edit's document (the parser under toml), rather than wrapping every raw field
//! in `Spanned`: origins and error messages both need them, for any spelling of a table.

use std::collections::BTreeMap;

/// The 1-based line of byte `offset` in `text`.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|&b| b == b'\n').count() + 1
}

/// The line of every key the file sets, by key path: `state_dir`, `source[1].exclude`,
/// `target[2].keep.daily`, `notify.on_failure.webhook` — however the file spells the table
/// (`[notify.on_failure]`, an inline table, or dotted keys). Read from toml_edit's spans (the
/// parser under toml), rather than wrapping every raw field in `Spanned`.
pub(super) fn key_lines(text: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    walk_keys(text, &mut |path, key, _| {
        if let Some(span) = key {
            out.insert(path.to_string(), line_of(text, span.start));
        }
    });
    out
}

/// The path of the innermost key whose value holds byte `offset` (where a type error points),
/// so the error names `source[1].exclude`, never the value that was wrong.
pub(super) fn key_at(text: &str, offset: usize) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    walk_keys(text, &mut |path, _, value| {
        if let Some(v) = value.filter(|v| v.contains(&offset) || v.start == offset) {
            if best.as_ref().is_none_or(|(len, _)| v.len() <= *len) {
                best = Some((v.len(), path.to_string()));
            }
        }
    });
    best.map(|(_, p)| p)
}

type Span = std::ops::Range<usize>;
/// What [`walk_keys`] calls for every key: its path, the span of the key, the span of its value.
type Visit<'a> = dyn FnMut(&str, Option<Span>, Option<Span>) + 'a;

/// Calls `visit(path, key span, value span)` for every key of the document (tables of an
/// array of tables as `name[N]`, with no key span of their own).
fn walk_keys(text: &str, visit: &mut Visit<'_>) {
    if let Ok(doc) = toml_edit::ImDocument::parse(text) {
        walk_table(doc.as_table(), "", visit);
    }
}

fn walk_table(table: &toml_edit::Table, prefix: &str, visit: &mut Visit<'_>) {
    for (name, _) in table.iter() {
        if let Some((key, item)) = table.get_key_value(name) {
            walk_item(key, item, &join_key(prefix, name), visit);
        }
    }
}

fn walk_item(key: &toml_edit::Key, item: &toml_edit::Item, path: &str, visit: &mut Visit<'_>) {
    use toml_edit::{Item, Value};
    visit(path, key.span().or_else(|| item.span()), item.span());
    match item {
        Item::Table(t) => walk_table(t, path, visit),
        Item::Value(Value::InlineTable(t)) => {
            for (name, _) in t.iter() {
                if let Some((k, v)) = t.get_key_value(name) {
                    walk_item(k, v, &join_key(path, name), visit);
                }
            }
        }
        Item::ArrayOfTables(a) => {
            for (i, t) in a.iter().enumerate() {
                let at = format!("{path}[{}]", i + 1);
                visit(&at, t.span(), t.span());
                walk_table(t, &at, visit);
            }
        }
        _ => {}
    }
}

fn join_key(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}
