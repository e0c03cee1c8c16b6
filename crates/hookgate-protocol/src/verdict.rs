//! What a callback carries, and the one parse of it that the relay (on intake), the run (after
//! verifying the signature) and `hookgate callback` (its own body) share:
//! - a verdict, `{"success": true|false, "mdMessage": "..."}` (Armory's callback), which ends the
//!   wait;
//! - or progress, `{"final": false, "mdMessage": "..."}`, which is shown while the wait goes on
//!   (`success`, if there, is not read: a runner from before `final` ignores a body without it,
//!   where it would take `success` as the verdict);
//! - either may carry `outputs`, a JSON object whose members later steps read (text as it is,
//!   any other JSON value as its JSON text), and `slot`, the slot it was made for.
//!
//! [`Verdict::check`] is exactly as strict as `serde_json::Value` (UTF-8, escapes, number range,
//! nesting depth) over the whole body, while keeping only what tells a verdict from progress:
//! every other member is parsed and dropped, so a body costs no allocation per member (the relay
//! runs it on every callback). [`Verdict::parse`] runs the same check, then reads the rest. A
//! repeated member counts as its last occurrence, as `serde_json` reads it.
//!
//! Member names that start with `$serde_json::private::` are refused at any depth: with some of
//! its features on, serde_json reads an object whose first member has such a name as something
//! else (the `RawValue` one turns a string into the JSON it contains), so a reader could take
//! another verdict from the body than the one checked here.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// Why a body is not a verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerdictError {
    /// Not JSON at all (the parser's message).
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    /// JSON, but not an object, or an object without `success`.
    #[error("the body is not a JSON object with `success`")]
    NotAnObject,
    /// `success` is there but not `true` or `false`.
    #[error("`success` must be true or false")]
    NotABoolean,
    /// `final` is there but not `true` or `false`.
    #[error("`final` must be true or false")]
    FinalNotABoolean,
    /// `outputs` is there but not a JSON object.
    #[error("`outputs` must be a JSON object")]
    OutputsNotAnObject,
}

/// What kind of callback a body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackKind {
    /// A verdict: `success`, which ends the wait.
    Final {
        /// Whether the gate passes.
        success: bool,
    },
    /// `"final": false`: news while the wait goes on.
    Progress,
}

/// What a callback says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// A verdict (`success`), or progress.
    pub kind: CallbackKind,
    /// `mdMessage`, Markdown shown with the result: a string as it is, any other JSON value as
    /// its JSON text; `None` when absent or `null`.
    pub message: Option<String>,
    /// `slot`, the id of the slot the verdict was made for. Inside a signed body it binds the
    /// verdict to that slot: a run takes a signed verdict only for its own slot. `None` when
    /// absent or not text.
    pub slot: Option<String>,
    /// `outputs`, by name: text as it is, any other JSON value as its JSON text (`null` members
    /// are left out). Empty when absent.
    pub outputs: BTreeMap<String, String>,
}

impl Verdict {
    /// Checks that `body` is a callback: a JSON object with a boolean `success`, or with
    /// `"final": false`; `final` and `outputs`, when there, must be a boolean and an object.
    pub fn check(body: &[u8]) -> Result<CallbackKind, VerdictError> {
        let value: Checked =
            serde_json::from_slice(body).map_err(|err| VerdictError::NotJson(err.to_string()))?;
        let Checked::Object(members) = value else {
            return Err(VerdictError::NotAnObject);
        };
        if members.outputs == Some(false) {
            return Err(VerdictError::OutputsNotAnObject);
        }
        match (members.final_, members.success) {
            (Some(None), _) => Err(VerdictError::FinalNotABoolean),
            (Some(Some(false)), _) => Ok(CallbackKind::Progress),
            (_, Some(Some(success))) => Ok(CallbackKind::Final { success }),
            (_, Some(None)) => Err(VerdictError::NotABoolean),
            (_, None) => Err(VerdictError::NotAnObject),
        }
    }

    /// Reads `body` as a callback: [`check`](Self::check)ed first (reserved member names are
    /// refused at any depth, `mdMessage`'s included), then `mdMessage`, `slot` and `outputs`
    /// read.
    pub fn parse(body: &[u8]) -> Result<Verdict, VerdictError> {
        let kind = Self::check(body)?;
        let mut verdict = Verdict {
            kind,
            message: None,
            slot: None,
            outputs: BTreeMap::new(),
        };
        // The check above parsed the same bytes as an object.
        let Ok(serde_json::Value::Object(mut members)) =
            serde_json::from_slice::<serde_json::Value>(body)
        else {
            return Ok(verdict);
        };
        verdict.message = match members.remove("mdMessage") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(text)) => Some(text),
            Some(other) => Some(other.to_string()),
        };
        verdict.slot = match members.remove("slot") {
            Some(serde_json::Value::String(slot)) => Some(slot),
            _ => None,
        };
        if let Some(serde_json::Value::Object(outputs)) = members.remove("outputs") {
            verdict.outputs = outputs
                .into_iter()
                .filter_map(|(name, value)| match value {
                    serde_json::Value::Null => None,
                    serde_json::Value::String(text) => Some((name, text)),
                    other => Some((name, other.to_string())),
                })
                .collect();
        }
        Ok(verdict)
    }

    /// A final verdict's `success`; `None` for progress.
    pub fn success(&self) -> Option<bool> {
        match self.kind {
            CallbackKind::Final { success } => Some(success),
            CallbackKind::Progress => None,
        }
    }

    /// The callback's body: `{"success": ..., "mdMessage": ...}`, or `{"final": false, ...}`.
    pub fn to_body(&self) -> Vec<u8> {
        let mut body = serde_json::Map::new();
        match self.kind {
            CallbackKind::Final { success } => {
                body.insert("success".into(), success.into());
            }
            CallbackKind::Progress => {
                body.insert("final".into(), false.into());
            }
        }
        if let Some(message) = &self.message {
            body.insert("mdMessage".into(), message.clone().into());
        }
        if let Some(slot) = &self.slot {
            body.insert("slot".into(), slot.clone().into());
        }
        if !self.outputs.is_empty() {
            let outputs = self
                .outputs
                .iter()
                .map(|(name, value)| (name.clone(), value.clone().into()))
                .collect();
            body.insert("outputs".into(), serde_json::Value::Object(outputs));
        }
        serde_json::Value::Object(body).to_string().into_bytes()
    }
}

/// The names serde_json keeps for itself.
const RESERVED_PREFIX: &str = "$serde_json::private::";

/// Which member a name is, read without keeping the name; reserved names are refused.
enum Member {
    Success,
    Final,
    Outputs,
    Other,
}

impl<'de> Deserialize<'de> for Member {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl Visitor<'_> for NameVisitor {
            type Value = Member;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<Member, E> {
                if name.starts_with(RESERVED_PREFIX) {
                    return Err(E::custom(format_args!(
                        "member names starting with `{RESERVED_PREFIX}` are not accepted"
                    )));
                }
                Ok(match name {
                    "success" => Member::Success,
                    "final" => Member::Final,
                    "outputs" => Member::Outputs,
                    _ => Member::Other,
                })
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

/// Any JSON value, parsed in full and dropped but for what tells a callback's kind: a boolean's
/// value, and an object's `success`, `final` and `outputs` members (the last of each if
/// repeated). Unlike `serde::de::IgnoredAny`, which lets serde_json skip over strings and numbers
/// without decoding them, this has every string decoded (valid UTF-8, no lone surrogate escapes),
/// every number converted (in range) and the nesting limit applied, as for `serde_json::Value`.
enum Checked {
    Bool(bool),
    Object(ObjectMembers),
    Other,
}

/// What an object's members tell: `success` and `final` are `None` when absent, `Some(None)`
/// when not a boolean; `outputs` is whether it is an object, when there.
#[derive(Default)]
struct ObjectMembers {
    success: Option<Option<bool>>,
    final_: Option<Option<bool>>,
    outputs: Option<bool>,
}

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Checked, E> {
        Ok(Checked::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked::Other)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked::Other)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked::Other)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked::Other)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Checked, E> {
        Ok(Checked::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        let mut members = ObjectMembers::default();
        while let Some(member) = map.next_key::<Member>()? {
            let value = map.next_value::<Checked>()?;
            let boolean = match value {
                Checked::Bool(value) => Some(value),
                Checked::Object(_) | Checked::Other => None,
            };
            match member {
                Member::Success => members.success = Some(boolean),
                Member::Final => members.final_ = Some(boolean),
                Member::Outputs => members.outputs = Some(matches!(value, Checked::Object(_))),
                Member::Other => {}
            }
        }
        Ok(Checked::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: &[u8]) -> Result<(), VerdictError> {
        let checked = Verdict::check(body).map(drop);
        // Parsing agrees with the check on every body.
        assert_eq!(Verdict::parse(body).map(drop), checked);
        checked
    }

    #[test]
    fn the_message_is_kept_as_text() {
        let read = |body: &str| Verdict::parse(body.as_bytes()).map(|v| v.message);
        assert_eq!(
            read(r#"{"success": true, "mdMessage": "**ok**"}"#),
            Ok(Some("**ok**".to_owned()))
        );
        assert_eq!(read(r#"{"success": true, "mdMessage": null}"#), Ok(None));
        assert_eq!(read(r#"{"success": true}"#), Ok(None));
        assert_eq!(
            read(r#"{"success": false, "mdMessage": {"failed": 3}}"#),
            Ok(Some(r#"{"failed":3}"#.to_owned()))
        );
        assert_eq!(
            read(r#"{"mdMessage": "first", "success": true, "mdMessage": "last"}"#),
            Ok(Some("last".to_owned()))
        );
        let verdict = Verdict {
            kind: CallbackKind::Final { success: false },
            message: Some("3 \"tests\" failed".to_owned()),
            slot: Some("019ad3c0c0007000800000000000f022".to_owned()),
            outputs: BTreeMap::from([("report".to_owned(), "https://ci/1".to_owned())]),
        };
        assert_eq!(Verdict::parse(&verdict.to_body()), Ok(verdict));
    }

    #[test]
    fn final_false_is_progress_whatever_success_says() {
        let kind = |body: &str| Verdict::check(body.as_bytes());
        assert_eq!(
            kind(r#"{"final": false, "mdMessage": "3 of 9"}"#),
            Ok(CallbackKind::Progress)
        );
        assert_eq!(
            kind(r#"{"final": false, "success": true}"#),
            Ok(CallbackKind::Progress)
        );
        assert_eq!(
            kind(r#"{"final": false, "success": "?"}"#),
            Ok(CallbackKind::Progress)
        );
        assert_eq!(
            kind(r#"{"final": true, "success": false}"#),
            Ok(CallbackKind::Final { success: false })
        );
        assert_eq!(kind(r#"{"final": true}"#), Err(VerdictError::NotAnObject));
        for body in [r#"{"final": "no", "success": true}"#, r#"{"final": null}"#] {
            assert_eq!(
                check(body.as_bytes()),
                Err(VerdictError::FinalNotABoolean),
                "{body}"
            );
        }
        let progress = Verdict {
            kind: CallbackKind::Progress,
            message: Some("deploying".to_owned()),
            slot: None,
            outputs: BTreeMap::new(),
        };
        assert_eq!(
            progress.to_body(),
            br#"{"final":false,"mdMessage":"deploying"}"#
        );
        assert_eq!(Verdict::parse(&progress.to_body()), Ok(progress));
    }

    #[test]
    fn outputs_are_text_by_name() {
        let outputs = Verdict::parse(
            br#"{"success": true, "outputs": {"url": "https://x", "count": 3, "ok": true, "gone": null, "list": [1, "a"]}}"#,
        )
        .map(|verdict| verdict.outputs);
        assert_eq!(
            outputs,
            Ok(BTreeMap::from([
                ("count".to_owned(), "3".to_owned()),
                ("list".to_owned(), r#"[1,"a"]"#.to_owned()),
                ("ok".to_owned(), "true".to_owned()),
                ("url".to_owned(), "https://x".to_owned()),
            ]))
        );
        for body in [
            r#"{"success": true, "outputs": "url=x"}"#,
            r#"{"success": true, "outputs": ["url"]}"#,
            r#"{"final": false, "outputs": null}"#,
        ] {
            assert_eq!(
                check(body.as_bytes()),
                Err(VerdictError::OutputsNotAnObject),
                "{body}"
            );
        }
    }

    #[test]
    fn objects_with_a_boolean_success_are_verdicts() {
        for body in [
            &br#"{"success": true, "mdMessage": "ok"}"#[..],
            br#"{"success": false}"#,
            b" \n{\"success\": true, \"details\": [1, -2.5e3, {\"a\": null, \"\\u00e9\": \"\\ud83d\\ude00\"}]}\n",
            // The last of a repeated member counts, as when the action reads the body.
            br#"{"success": "yes", "success": true}"#,
        ] {
            assert_eq!(check(body), Ok(()), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn anything_else_is_refused_with_its_reason() {
        let not_json = |body: &[u8]| matches!(check(body), Err(VerdictError::NotJson(_)));
        for body in [
            &b"not json"[..],
            b"",
            b"[",
            br#"{"success": true"#,
            br#"{"success": true} trailing"#,
            // What serde_json would skip over unchecked in a member it does not keep.
            b"{\"success\": true, \"m\": \"\xff\"}",
            br#"{"success": true, "m": "\ud800"}"#,
            br#"{"success": true, "n": 1e999}"#,
            br#"{"success": true, "m": "\x"}"#,
        ] {
            assert!(
                not_json(body),
                "{}: {:?}",
                String::from_utf8_lossy(body),
                check(body)
            );
        }
        let deep = format!(
            r#"{{"success": true, "x": {}{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert!(not_json(deep.as_bytes()), "{:?}", check(deep.as_bytes()));
        assert!(not_json(b"[\"\xff\"]"));
        for body in [
            &br#"{"success": true, "mdMessage": {"$serde_json::private::RawValue": "\"x\""}}"#[..],
            br#"{"$serde_json::private::RawValue": "{\"success\": false}", "success": true}"#,
            br#"{"success": {"$serde_json::private::RawValue": "true"}}"#,
            br#"{"success": true, "m": [{"$serde_json::private::Number": "1"}]}"#,
            br#"[{"$serde_json::private::RawValue": "1"}]"#,
        ] {
            assert!(not_json(body), "{}", String::from_utf8_lossy(body));
        }

        for body in [
            &br#"[true]"#[..],
            b"true",
            br#"{"mdMessage": "no verdict"}"#,
            b"{}",
        ] {
            assert_eq!(
                check(body),
                Err(VerdictError::NotAnObject),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        for body in [
            &br#"{"success": "true"}"#[..],
            br#"{"success": null}"#,
            br#"{"success": 1}"#,
        ] {
            assert_eq!(
                check(body),
                Err(VerdictError::NotABoolean),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
