//! The one `--json` contract (docs/json.md): under `--json` every command prints exactly one
//! [`Envelope`] on stdout, whether it succeeded, failed on some items, or failed outright.
//! Commands hand their payload and their per-item problems to the [`Collected`] of the
//! context; `app` wraps them, with the exit code, once the command has ended. The shape is a
//! public contract like the exit codes: fields are never renamed or removed, `schema` goes up
//! if they ever must be.

use serde::Serialize;

use opus_mirror_core::exit::Exit;

/// The version of the envelope's shape.
pub const SCHEMA: u32 = 1;

/// What `--json` prints, once per command.
#[derive(Debug, Serialize)]
pub struct Envelope {
    pub schema: u32,
    /// True exactly when `exit` is 0.
    pub ok: bool,
    /// The process exit code (README, "Exit codes").
    pub exit: u8,
    /// Its name: `ok`, `failed`, `usage`, `warnings`, `at-risk`, ...
    pub outcome: Exit,
    /// The subcommand, as typed: `snapshot`, `guard status`, `notify test`.
    pub command: String,
    /// The command's own payload (docs/json.md); `null` when it failed before producing one.
    pub data: serde_json::Value,
    pub warnings: Vec<Problem>,
    /// Every error: each failed item (a source, a target) and the error that ended the command.
    pub errors: Vec<Problem>,
}

/// One error or warning, as the human line says it, split into its message and its fix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl Problem {
    /// From the text a human line shows (`problem\n  fix: what to do`); URLs have their
    /// credentials masked as everywhere else.
    pub(crate) fn from_text(text: &str) -> Problem {
        let text = opus_mirror_core::config::mask_urls_in(text);
        let (message, fix) = match text.split_once("\n  fix: ") {
            Some((m, f)) => (m.to_string(), Some(f.trim_end().to_string())),
            None => (text.trim_end().to_string(), None),
        };
        Problem { message, fix, source: None, target: None }
    }

    /// From an error chain, as `main` prints it (`{:#}`).
    pub fn of(err: &anyhow::Error) -> Problem {
        Problem::from_text(&format!("{err:#}"))
    }

    /// Names the source and target the problem is about.
    pub fn on(mut self, source: Option<&str>, target: Option<&str>) -> Problem {
        self.source = source.map(str::to_string);
        self.target = target.map(str::to_string);
        self
    }
}

/// What a command gathers for its envelope while it runs.
#[derive(Debug, Default)]
pub struct Collected {
    pub data: Option<serde_json::Value>,
    /// Lines the command would have said to a person (for commands without a payload).
    pub said: Vec<String>,
    pub warnings: Vec<Problem>,
    pub errors: Vec<Problem>,
}

impl Collected {
    /// The envelope of a command that ended with `result`. A command that set no payload
    /// reports what it did as `{"messages": [...]}`.
    pub(crate) fn into_envelope(mut self, command: String, result: &anyhow::Result<Exit>) -> Envelope {
        let exit = match result {
            Ok(e) => *e,
            Err(err) => {
                self.errors.push(Problem::of(err));
                opus_mirror_core::classify::exit_for(err)
            }
        };
        let data = match (self.data, result) {
            (Some(d), _) => d,
            (None, Ok(_)) => serde_json::json!({ "messages": self.said }),
            (None, Err(_)) => serde_json::Value::Null,
        };
        Envelope {
            schema: SCHEMA,
            ok: exit == Exit::Ok,
            exit: exit.code(),
            outcome: exit,
            command,
            data,
            warnings: self.warnings,
            errors: self.errors,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fix_line_is_split_off() {
        let p = Problem::from_text("config: no source\n  fix: add one with `opus-mirror init`");
        assert_eq!(p.message, "config: no source");
        assert_eq!(p.fix.as_deref(), Some("add one with `opus-mirror init`"));
        assert_eq!(Problem::from_text("disk gone\n").fix, None);
    }

    #[test]
    fn credentials_in_urls_are_masked() {
        let p = Problem::from_text("cannot reach https://me:hunter22@example.org/x.git");
        assert!(!p.message.contains("hunter22"), "{}", p.message);
    }

    #[test]
    fn an_error_makes_a_failed_envelope_without_data() {
        let e = Collected::default().into_envelope(
            "status".into(),
            &Err(opus_mirror_core::exit::UserError::usage("bad\n  fix: good").into()),
        );
        assert!(!e.ok);
        assert_eq!((e.exit, e.data.clone()), (2, serde_json::Value::Null));
        assert_eq!(e.errors[0].fix.as_deref(), Some("good"));
        let ok = Collected::default().into_envelope("init".into(), &Ok(Exit::Warnings));
        assert!(!ok.ok && ok.exit == 3);
        assert_eq!(ok.data, serde_json::json!({"messages": []}));
    }
}
