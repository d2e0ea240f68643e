//! Numbers, ages, paths and ids the way people read them, for messages the engine builds.

/// Formats a byte count the way people read it.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// An age in its largest whole unit: 40s, 12min, 5h, 3d.
pub fn human_age(secs: i64) -> String {
    match secs.max(0) {
        s if s >= 86_400 => format!("{}d", s / 86_400),
        s if s >= 3600 => format!("{}h", s / 3600),
        s if s >= 60 => format!("{}min", s / 60),
        s => format!("{s}s"),
    }
}

/// A duration the way people write it: 26h, 7d, 2w.
pub fn human_duration(d: chrono::Duration) -> String {
    let s = d.num_seconds();
    if s % 604_800 == 0 && s > 0 {
        format!("{}w", s / 604_800)
    } else if s % 86_400 == 0 && s > 0 {
        format!("{}d", s / 86_400)
    } else if s % 3600 == 0 && s > 0 {
        format!("{}h", s / 3600)
    } else if s % 60 == 0 && s > 0 {
        format!("{}min", s / 60)
    } else {
        format!("{s}s")
    }
}

/// A path from a git tree (raw bytes) as text for people: lossless for UTF-8, escaped otherwise.
pub fn display_path(p: &[u8]) -> String {
    match std::str::from_utf8(p) {
        Ok(s) => s.to_string(),
        Err(_) => p.escape_ascii().to_string(),
    }
}

/// How an id (commit, snapshot, tree) is shown to people: its first 12 characters. Ids read
/// back from manifests and state files are untrusted text, so a short or non-ASCII one is
/// shown as it is, never sliced inside a character (which would panic).
pub fn short_id(id: &str) -> &str {
    match id.char_indices().nth(12) {
        Some((end, _)) => &id[..end],
        None => id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_never_split_a_character() {
        assert_eq!(short_id("0123456789abcdef"), "0123456789ab");
        assert_eq!(short_id("abc"), "abc");
        assert_eq!(short_id(""), "");
        assert_eq!(short_id("ééééééééééééé"), "éééééééééééé");
    }

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(2048), "2.0 KiB");
        assert_eq!(human_bytes(210 * 1024 * 1024), "210.0 MiB");
    }

    #[test]
    fn non_utf8_paths_are_escaped() {
        assert_eq!(display_path(b"caf\xc3\xa9.md"), "café.md");
        assert_eq!(display_path(b"bad\xff.md"), "bad\\xff.md");
    }
}
