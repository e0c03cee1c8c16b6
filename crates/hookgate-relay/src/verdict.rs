//! What a callback's body must be before the relay stores it: JSON, exactly as strict as
//! `serde_json::Value` parses it (UTF-8, escapes, number range, nesting depth), and an object with
//! a boolean `success` (Armory's callback). Only `success` is kept while checking; every other
//! member is parsed and dropped, so a body costs no allocation per member.
//!
//! Member names that start with `$serde_json::private::` are refused at any depth: with some of
//! its features on, serde_json reads an object whose first member has such a name as something
//! else (the `RawValue` one turns a string into the JSON it contains), so the action could read
//! another verdict from the body than the one checked here.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// Why a body is not a verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerdictError {
    /// Not JSON at all (the parser's message).
    NotJson(String),
    /// JSON, but not an object, or an object without `success`.
    NotAnObject,
    /// `success` is there but not `true` or `false`.
    NotABoolean,
}

/// Checks that `body` is a JSON object with a boolean `success`. A member repeated counts as its
/// last occurrence, as when the action reads the body.
pub fn check(body: &[u8]) -> Result<(), VerdictError> {
    let value: Checked =
        serde_json::from_slice(body).map_err(|err| VerdictError::NotJson(err.to_string()))?;
    match value {
        Checked::Object {
            success: Some(Some(_)),
        } => Ok(()),
        Checked::Object {
            success: Some(None),
        } => Err(VerdictError::NotABoolean),
        Checked::Object { success: None } | Checked::Bool(_) | Checked::Other => {
            Err(VerdictError::NotAnObject)
        }
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
            &br#"{"$serde_json::private::RawValue": "{\"success\": false}", "success": true}"#[..],
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
