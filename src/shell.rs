//! Quoting for POSIX shells: every path or value we print in a command for the user to paste,
//! or write into a hook script, goes through here, so a space, quote or `$` in a name can
//! neither break the command nor inject another.

/// `s` as one shell word: unchanged when it is made only of safe characters, otherwise in
/// single quotes (a `'` inside becomes `'\''`).
pub fn quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-+:@%=,".contains(&b));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_words_survive_a_real_shell() {
        for s in ["plain/path.git", "My Life Lab", "it's", "$(rm -rf ~)", "a\nb", "", "*", "-n"] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", quote(s)))
                .output()
                .expect("sh runs");
            assert_eq!(String::from_utf8_lossy(&out.stdout), s, "quote({s:?}) = {}", quote(s));
        }
        assert_eq!(quote("/a/b.lock"), "/a/b.lock");
    }
}
