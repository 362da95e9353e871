//! The alias history both registries keep: one [`AliasEvent`] per move of an alias, and the
//! rule a rollback follows.
//!
//! **Rollback walks back through earlier champions.** Replaying the history gives a stack of
//! champions: an ordinary move pushes its version, a rollback pops back to the version it
//! restored. A rollback goes to the newest version on that stack that is not the current one.
//! So after `1 → 2 → 3`, a rollback goes to 2, the next to 1, and a third has nowhere to go;
//! a move by hand after a rollback (`… → 2 (rollback) → 4`) is undone by the next rollback
//! (back to 2).

use serde::{Deserialize, Serialize};

use crate::{RegistryError, Result};

/// One move of an alias (oldest first in a history).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasEvent {
    pub alias: String,
    /// The version the alias now names ("3").
    pub version: String,
    /// The version it named before, if any.
    pub previous: Option<String>,
    /// When, RFC 3339 UTC.
    pub at: String,
    /// Who or what moved it: "pipeline run 12", "doodle-registry deploy", ...
    pub by: String,
    /// Why: "promoted by the gate: top-1 0.93 >= 0.92 - 0.005", "rollback from version 3", ...
    pub reason: String,
    /// Whether this move was a rollback (it undoes the move that made `previous` champion).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rollback: bool,
}

impl AliasEvent {
    /// A move of `alias` from `previous` to `version`, now.
    pub fn now(
        alias: &str,
        version: String,
        previous: Option<String>,
        by: &str,
        reason: &str,
    ) -> Self {
        Self {
            alias: alias.to_owned(),
            version,
            previous,
            at: now_rfc3339(),
            by: by.to_owned(),
            reason: reason.to_owned(),
            rollback: false,
        }
    }
}

/// The reason recorded on a rollback from `from`, with the caller's note when there is one.
pub fn rollback_reason(from: &str, note: &str) -> String {
    let note = note.trim();
    if note.is_empty() {
        format!("rollback from version {from}")
    } else {
        format!("rollback from version {from}: {note}")
    }
}

/// The champions a history leaves on the stack, oldest first (see the module docs).
pub fn champions(history: &[AliasEvent]) -> Vec<&str> {
    let mut stack: Vec<&str> = Vec::new();
    for event in history {
        let version = event.version.as_str();
        if event.rollback
            && let Some(at) = stack.iter().rposition(|v| *v == version)
        {
            stack.truncate(at + 1);
        } else if stack.last() != Some(&version) {
            stack.push(version);
        }
    }
    stack
}

/// Where a rollback of `alias`, now naming `current`, goes: the newest earlier champion that
/// is not `current`.
pub fn rollback_target<'h>(
    alias: &str,
    history: &'h [AliasEvent],
    current: &str,
) -> Result<&'h str> {
    champions(history)
        .into_iter()
        .rev()
        .find(|v| *v != current)
        .ok_or_else(|| {
            RegistryError::Invalid(format!(
                "alias {alias:?} (version {current}) has no earlier version to roll back to"
            ))
        })
}

/// How many leading bytes of a JSON-lines file are whole lines: a last line without its
/// newline is a torn write and is left out.
pub(crate) fn complete_len(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1)
}

/// The events in a JSON-lines history, ignoring a torn last line.
pub(crate) fn parse_lines(bytes: &[u8]) -> serde_json::Result<Vec<AliasEvent>> {
    bytes[..complete_len(bytes)]
        .split(|b| *b == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .map(serde_json::from_slice)
        .collect()
}

pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("formatting the current time cannot fail. This is a bug.")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moved(version: &str) -> AliasEvent {
        AliasEvent::now("champion", version.into(), None, "test", "")
    }

    fn rolled_back(version: &str) -> AliasEvent {
        AliasEvent {
            rollback: true,
            ..moved(version)
        }
    }

    fn target(history: &[AliasEvent], current: &str) -> Option<String> {
        rollback_target("champion", history, current)
            .ok()
            .map(str::to_owned)
    }

    #[test]
    fn rollbacks_walk_back_through_earlier_champions() {
        let mut history = vec![moved("1"), moved("2"), moved("3")];
        assert_eq!(target(&history, "3").as_deref(), Some("2"));
        history.push(rolled_back("2"));
        assert_eq!(target(&history, "2").as_deref(), Some("1"));
        history.push(rolled_back("1"));
        assert_eq!(target(&history, "1"), None);
    }

    #[test]
    fn a_move_after_a_rollback_is_what_the_next_rollback_undoes() {
        let history = [
            moved("1"),
            moved("2"),
            moved("3"),
            rolled_back("2"),
            moved("4"),
        ];
        assert_eq!(champions(&history), ["1", "2", "4"]);
        assert_eq!(target(&history, "4").as_deref(), Some("2"));
    }

    #[test]
    fn repeated_and_returning_versions_are_skipped_when_current() {
        let history = [moved("1"), moved("2"), moved("2"), moved("1"), moved("3")];
        assert_eq!(champions(&history), ["1", "2", "1", "3"]);
        assert_eq!(target(&history, "3").as_deref(), Some("1"));
        let history = [moved("1"), moved("2"), moved("1")];
        assert_eq!(target(&history, "1").as_deref(), Some("2"));
    }

    #[test]
    fn an_alias_moved_outside_the_history_rolls_back_to_the_last_recorded_champion() {
        let history = [moved("1"), moved("2")];
        assert_eq!(target(&history, "7").as_deref(), Some("2"));
    }

    #[test]
    fn no_earlier_version_is_a_clear_error() {
        let err = rollback_target("champion", &[moved("1")], "1").unwrap_err();
        assert_eq!(
            err.to_string(),
            "alias \"champion\" (version 1) has no earlier version to roll back to"
        );
        assert!(rollback_target("champion", &[], "1").is_err());
    }

    #[test]
    fn a_torn_last_line_is_ignored() {
        let mut bytes = Vec::new();
        for v in ["1", "2"] {
            bytes.extend(serde_json::to_vec(&moved(v)).unwrap());
            bytes.push(b'\n');
        }
        let whole = bytes.len();
        bytes.extend(br#"{"alias":"champion","vers"#);
        assert_eq!(complete_len(&bytes), whole);
        let events = parse_lines(&bytes).unwrap();
        assert_eq!(
            events.iter().map(|e| &e.version).collect::<Vec<_>>(),
            ["1", "2"]
        );
        assert!(
            parse_lines(b"{not json}\n").is_err(),
            "a whole bad line is corruption"
        );
    }

    #[test]
    fn events_without_the_rollback_field_read_as_ordinary_moves() {
        let line = br#"{"alias":"champion","version":"2","previous":"1","at":"2026-01-01T00:00:00Z","by":"x","reason":"y"}
"#;
        let events = parse_lines(line).unwrap();
        assert!(!events[0].rollback);
        assert_eq!(events[0].previous.as_deref(), Some("1"));
        assert_eq!(
            rollback_reason("5", "  bad gate  "),
            "rollback from version 5: bad gate"
        );
        assert_eq!(rollback_reason("5", ""), "rollback from version 5");
    }
}
