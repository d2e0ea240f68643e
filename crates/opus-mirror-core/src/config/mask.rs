//! Masking: how a credential is shown when it must be shown at all.
//!
//! A URL, a webhook, an rclone connection string or a `.env` value may carry a token; every
//! place that shows one (`config check`, errors quoting git's and rclone's messages, the
//! recovery runbook, the health note, notifications) goes through these functions, so what is
//! hidden is decided in one place.

/// Masks a secret for display: enough to recognise it, never enough to use it.
pub fn mask(value: &str) -> String {
    if value.chars().count() <= 4 {
        "****".into()
    } else {
        format!("{}****", value.chars().take(2).collect::<String>())
    }
}

/// Whether a parameter name (URL query, rclone connection string) holds a credential.
pub fn secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["token", "secret", "pass", "key", "sig", "auth", "credential", "session"].iter().any(|s| k.contains(s))
}

/// `k=v` pairs separated by `sep`, with the values of secret-looking keys masked.
fn mask_pairs(text: &str, sep: char) -> String {
    text.split(sep)
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if secret_key(k) => format!("{k}=****"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join(&sep.to_string())
}

/// Hides credentials in a remote: a password or token in a URL's userinfo
/// (`https://user:secret@host` → `user:****`), secret-looking query parameters
/// (`?token=…`), and the keys of an rclone connection string (`:s3,secret_access_key=…:bucket`).
pub fn mask_url(url: &str) -> String {
    if let Some(rest) = url.strip_prefix(':') {
        // rclone `:backend,key=value,...:path`
        if let Some((params, path)) = rest.split_once(':') {
            return format!(":{}:{path}", mask_pairs(params, ','));
        }
    }
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(mask_pairs(q, '&'))),
        None => (url, None),
    };
    let base = match base.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:****@{host}"),
                None if scheme.starts_with("http") => format!("{scheme}://****@{host}"),
                None => base.to_string(),
            },
            None => base.to_string(),
        },
        None => base.to_string(),
    };
    match query {
        Some(q) => format!("{base}?{q}"),
        None => base,
    }
}

/// Masks every URL inside free text (a tool's error message quotes the URL it failed on, in its
/// own spelling: git drops the userinfo but keeps a `?token=`).
pub fn mask_urls_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) =
        ["https://", "http://", "ssh://", "git://", "ftp://"].iter().filter_map(|p| rest.find(p)).min()
    {
        out.push_str(&rest[..i]);
        let end = rest[i..]
            .find(|c: char| c.is_whitespace() || "'\"<>`".contains(c))
            .map(|e| i + e)
            .unwrap_or(rest.len());
        out.push_str(&mask_url(&rest[i..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Shows where a URL goes without the token it may carry in its path or query.
pub fn mask_endpoint(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return "****".into() };
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = host.rsplit_once('@').map(|(_, h)| h).unwrap_or(host);
    format!("{scheme}://{host}/****")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_secrets() {
        assert_eq!(mask_url("https://me:tok123@github.com/x.git"), "https://me:****@github.com/x.git");
        assert_eq!(mask_url("https://tok123@github.com/x.git"), "https://****@github.com/x.git");
        assert_eq!(mask_url("ssh://git@host/x.git"), "ssh://git@host/x.git");
        assert_eq!(mask_url("/srv/mirror.git"), "/srv/mirror.git");
        assert_eq!(
            mask_url("https://host/x.git?token=abc123&ref=main"),
            "https://host/x.git?token=****&ref=main"
        );
        assert_eq!(
            mask_url(":s3,provider=AWS,access_key_id=AKIA1,secret_access_key=SECRET9:bucket/opus"),
            ":s3,provider=AWS,access_key_id=****,secret_access_key=****:bucket/opus"
        );
        assert_eq!(mask_url("b2:my-bucket/opus"), "b2:my-bucket/opus");
        assert_eq!(
            mask_urls_in("fatal: unable to access 'https://h/x.git?token=T0K/': failed; see https://a:b@h/"),
            "fatal: unable to access 'https://h/x.git?token=****': failed; see https://a:****@h/"
        );
    }

    #[test]
    fn mask_hides_most_of_a_secret() {
        assert_eq!(mask("abc"), "****");
        assert_eq!(mask("supersecret"), "su****");
    }
}
