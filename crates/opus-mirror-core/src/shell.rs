//! Quoting for POSIX shells: every path or value we print in a command for the user to paste,
//! or write into a hook script, goes through here, so a space, quote or `$` in a name can
//! neither break the command nor inject another.

/// `s` as one shell word: unchanged when it is made only of safe characters, otherwise in
/// single quotes (a `'` inside becomes `'\''`).
pub fn quote(s: &str) -> String {
    let safe = !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-+:@%=,".contains(&b));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// `s` for a crontab command: shell-quoted, with `%` (a newline to cron) escaped.
pub fn cron_word(s: &str) -> String {
    quote(s).replace('%', "\\%")
}

/// `s` as one word of a systemd `ExecStart=`/`Environment=` line: double-quoted, with `\`
/// and `"` escaped, `%` (a specifier) doubled and `$` (a variable) doubled.
pub fn systemd_word(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
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

    /// What cron does to a command before handing it to sh: `\%` becomes `%`.
    #[test]
    fn cron_words_survive_cron_and_sh() {
        for s in ["/home/me/it's $(touch x) `y` 100% \"q\"/c.toml", "/plain/path"] {
            let line = format!("printf %s {}", cron_word(s)).replace("printf %s", "printf @@");
            let as_cron = line.replace("\\%", "%").replace("@@", "%s");
            let out = std::process::Command::new("sh").arg("-c").arg(&as_cron).output().unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), s, "{line}");
            assert!(!line.replace("\\%", "").contains('%'), "an unescaped % in {line}");
        }
    }

    #[test]
    fn systemd_words_escape_specifiers_variables_and_quotes() {
        assert_eq!(systemd_word("/a b/c"), "\"/a b/c\"");
        assert_eq!(systemd_word("100%$HOME\"\\"), "\"100%%$$HOME\\\"\\\\\"");
    }
}
