//! The verdict a callback carries, `{"success": true|false, "mdMessage": "..."}` (Armory's
//! callback), and the one parse of it that the relay (on intake), the run (after verifying the
//! signature) and `hookgate callback` (its own body) share.
//!
//! [`Verdict::check`] is exactly as strict as `serde_json::Value` (UTF-8, escapes, number range,
//! nesting depth) over the whole body, while keeping only `success`: every other member is parsed
//! and dropped, so a body costs no allocation per member (the relay runs it on every callback).
//! [`Verdict::parse`] runs the same check, then reads `mdMessage`. A repeated member counts as
//! its last occurrence, as `serde_json` reads it.
//!
//! Member names that start with `$serde_json::private::` are refused at any depth: with some of
//! its features on, serde_json reads an object whose first member has such a name as something
//! else (the `RawValue` one turns a string into the JSON it contains), so a reader could take
//! another verdict from the body than the one checked here.

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
}

/// What a callback says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// `success`: whether the gate passes.
    pub success: bool,
    /// `mdMessage`, Markdown shown with the result: a string as it is, any other JSON value as
    /// its JSON text; `None` when absent or `null`.
    pub message: Option<String>,
    /// `slot`, the id of the slot the verdict was made for. Inside a signed body it binds the
    /// verdict to that slot: a run takes a signed verdict only for its own slot. `None` when
    /// absent or not text.
    pub slot: Option<String>,
}

impl Verdict {
    /// Checks that `body` is a verdict, a JSON object with a boolean `success`, and returns
    /// `success`.
    pub fn check(body: &[u8]) -> Result<bool, VerdictError> {
        let value: Checked =
            serde_json::from_slice(body).map_err(|err| VerdictError::NotJson(err.to_string()))?;
        match value {
            Checked::Object {
                success: Some(Some(success)),
            } => Ok(success),
            Checked::Object {
                success: Some(None),
            } => Err(VerdictError::NotABoolean),
            Checked::Object { success: None } | Checked::Bool(_) | Checked::Other => {
                Err(VerdictError::NotAnObject)
            }
        }
    }

    /// Reads `body` as a verdict: [`check`](Self::check)ed first (reserved member names are
    /// refused at any depth, `mdMessage`'s included), then `mdMessage` read.
    pub fn parse(body: &[u8]) -> Result<Verdict, VerdictError> {
        let success = Self::check(body)?;
        // The check above parsed the same bytes as an object.
        let Ok(serde_json::Value::Object(mut members)) =
            serde_json::from_slice::<serde_json::Value>(body)
        else {
            return Ok(Verdict {
                success,
                message: None,
                slot: None,
            });
        };
        let message = match members.remove("mdMessage") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(text)) => Some(text),
            Some(other) => Some(other.to_string()),
        };
        let slot = match members.remove("slot") {
            Some(serde_json::Value::String(slot)) => Some(slot),
            _ => None,
        };
        Ok(Verdict {
            success,
            message,
            slot,
        })
    }

    /// The verdict as a callback body, `{"success": ..., "mdMessage": ...}`.
    pub fn to_body(&self) -> Vec<u8> {
        let mut body = serde_json::Map::new();
        body.insert("success".into(), self.success.into());
        if let Some(message) = &self.message {
            body.insert("mdMessage".into(), message.clone().into());
        }
        if let Some(slot) = &self.slot {
            body.insert("slot".into(), slot.clone().into());
        }
        serde_json::Value::Object(body).to_string().into_bytes()
    }
}

/// The names serde_json keeps for itself.
const RESERVED_PREFIX: &str = "$serde_json::private::";

/// Whether a member's name is `success`, read without keeping the name; reserved names are
/// refused.
struct IsSuccess(bool);

impl<'de> Deserialize<'de> for IsSuccess {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl Visitor<'_> for NameVisitor {
            type Value = IsSuccess;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<IsSuccess, E> {
                if name.starts_with(RESERVED_PREFIX) {
                    return Err(E::custom(format_args!(
                        "member names starting with `{RESERVED_PREFIX}` are not accepted"
                    )));
                }
                Ok(IsSuccess(name == "success"))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

/// Any JSON value, parsed in full and dropped but for what a verdict needs: a boolean's value,
/// and an object's `success` member (the last one if repeated). Unlike `serde::de::IgnoredAny`,
/// which lets serde_json skip over strings and numbers without decoding them, this has every
/// string decoded (valid UTF-8, no lone surrogate escapes), every number converted (in range) and
/// the nesting limit applied, as for `serde_json::Value`.
enum Checked {
    Bool(bool),
    /// `success` is `None` when absent, `Some(None)` when not a boolean.
    Object {
        success: Option<Option<bool>>,
    },
    Other,
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
        let mut success = None;
        while let Some(IsSuccess(is_success)) = map.next_key()? {
            let value = map.next_value::<Checked>()?;
            if is_success {
                success = Some(match value {
                    Checked::Bool(value) => Some(value),
                    Checked::Object { .. } | Checked::Other => None,
                });
            }
        }
        Ok(Checked::Object { success })
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
            success: false,
            message: Some("3 \"tests\" failed".to_owned()),
            slot: Some("019ad3c0c0007000800000000000f022".to_owned()),
        };
        assert_eq!(Verdict::parse(&verdict.to_body()), Ok(verdict));
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
