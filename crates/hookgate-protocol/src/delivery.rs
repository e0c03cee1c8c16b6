//! A delivery: one callback as the relay stored it, raw, and as it serves it to the waiting run.

use std::fmt;
use std::time::SystemTime;

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::slot::SlotId;

/// One stored callback: the raw body and the request headers, untouched, so the run can verify
/// the signature itself. A header may carry a secret, so `Debug` shows header names only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// Its sequence number in the slot, from 1.
    pub sequence: u64,
    /// When the relay stored it.
    #[serde(with = "crate::time")]
    pub received_at: SystemTime,
    /// The request headers: lower-case names, in the order received; `Authorization` is never
    /// stored.
    pub headers: Vec<(String, String)>,
    /// The raw body, base64 on the wire.
    #[serde(rename = "bodyBase64", with = "base64_bytes")]
    pub body: Vec<u8>,
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("Delivery")
            .field("sequence", &self.sequence)
            .field("received_at", &self.received_at)
            .field("headers", &names)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// The answer to a long poll, `GET /v1/slots/{id}?after=N&wait=30s`: the slot's deliveries after
/// `N` (empty when the wait ended with none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotCallbacks {
    /// The slot.
    pub id: SlotId,
    /// Its deadline.
    #[serde(with = "crate::time")]
    pub deadline: SystemTime,
    /// The deliveries, in sequence order.
    pub callbacks: Vec<Delivery>,
}

mod base64_bytes {
    use super::*;

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|err| serde::de::Error::custom(format_args!("unreadable base64: {err}")))
    }
}
