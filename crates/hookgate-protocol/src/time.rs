//! Instants on the wire: RFC 3339 in UTC with milliseconds, as `humantime` writes them.

use std::time::SystemTime;

use serde::{Deserialize, Deserializer, Serializer};

pub(crate) fn serialize<S: Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*time))
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    humantime::parse_rfc3339_weak(&text)
        .map_err(|err| serde::de::Error::custom(format_args!("not an RFC 3339 instant: {err}")))
}
