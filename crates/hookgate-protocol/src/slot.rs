//! A slot: the mailbox of one waiting gate, and the terms it is opened on.

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A slot's id: 32 lower-case hex digits, a UUIDv7 (RFC 9562). Its first 12 digits are the
/// creation time in milliseconds and the rest is random, so slots created together sit together
/// in the store's indexes: the callbacks that soon follow write a few shared pages instead of a
/// page each somewhere in the index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotId(String);

impl SlotId {
    /// A new id: time-ordered, with 74 random bits.
    pub fn random() -> Self {
        Self(uuid::Uuid::now_v7().simple().to_string())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id's 128 bits, a compact map key. Every `SlotId` is 32 hex digits (`random` and
    /// `from_str` make no other), so the parse cannot fail.
    pub fn as_u128(&self) -> u128 {
        u128::from_str_radix(&self.0, 16).unwrap_or_default()
    }
}

impl FromStr for SlotId {
    type Err = InvalidSlotId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() == 32
            && text
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
        {
            Ok(Self(text.to_owned()))
        } else {
            Err(InvalidSlotId)
        }
    }
}

impl fmt::Display for SlotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for SlotId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SlotId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A text that is not a slot id.
#[derive(Debug, thiserror::Error)]
#[error("not a slot id (32 lower-case hex digits)")]
pub struct InvalidSlotId;

/// How callbacks into a slot authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallbackAuth {
    /// `Authorization: Bearer <slot token>`, a token the relay issues for this slot alone and
    /// checks on intake.
    #[serde(rename = "bearer")]
    Bearer,
    /// GitHub's `X-Hub-Signature-256`; the relay checks its form, the run its value.
    #[serde(rename = "hmac-github")]
    HmacGithub,
    /// Standard Webhooks `webhook-id`/`webhook-timestamp`/`webhook-signature`; the relay checks
    /// their form and freshness, the run the value.
    #[serde(rename = "hmac-standard")]
    HmacStandard,
}

impl CallbackAuth {
    /// The name used on the wire and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bearer => "bearer",
            Self::HmacGithub => "hmac-github",
            Self::HmacStandard => "hmac-standard",
        }
    }
}

impl FromStr for CallbackAuth {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "bearer" => Ok(Self::Bearer),
            "hmac-github" => Ok(Self::HmacGithub),
            "hmac-standard" => Ok(Self::HmacStandard),
            other => Err(format!("unknown callback auth {other:?}")),
        }
    }
}

/// When a slot stops taking callbacks: an instant, or seconds from when the relay creates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// Seconds from the slot's creation.
    In(u64),
    /// An instant.
    At(SystemTime),
}

impl Serialize for Deadline {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Deadline::In(seconds) => s.serialize_u64(*seconds),
            Deadline::At(time) => s.collect_str(&humantime::format_rfc3339_millis(*time)),
        }
    }
}

impl<'de> Deserialize<'de> for Deadline {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Seconds(u64),
            Instant(String),
        }
        match Either::deserialize(d).map_err(|_| {
            serde::de::Error::custom("a deadline is seconds from now or an RFC 3339 instant")
        })? {
            Either::Seconds(seconds) => Ok(Deadline::In(seconds)),
            Either::Instant(text) => humantime::parse_rfc3339_weak(&text)
                .map(Deadline::At)
                .map_err(|err| {
                    serde::de::Error::custom(format_args!(
                        "the deadline is not an RFC 3339 instant: {err}"
                    ))
                }),
        }
    }
}

/// `POST /v1/slots`: what a new slot should be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateSlot {
    /// How its callbacks authenticate.
    pub auth: CallbackAuth,
    /// When it stops taking callbacks (the relay may grant less).
    pub deadline: Deadline,
    /// A label for the relay's logs (a step's name); never secret.
    #[serde(default)]
    pub label: String,
}

/// The answer to `POST /v1/slots`: the slot opened and what reaches it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlotCreated {
    /// Its id.
    pub id: SlotId,
    /// Where callbacks go (`{{ callback.uri }}`, `{{ armory.callbackUri }}`).
    pub callback_url: String,
    /// The deadline granted.
    #[serde(with = "crate::time")]
    pub deadline: SystemTime,
    /// How its callbacks authenticate.
    pub auth: CallbackAuth,
    /// For bearer slots: the token callbacks must carry (`{{ callback.token }}`). Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The token that reads the slot. Secret.
    pub read_token: String,
}

impl fmt::Debug for SlotCreated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlotCreated")
            .field("id", &self.id)
            .field("callback_url", &self.callback_url)
            .field("deadline", &self.deadline)
            .field("auth", &self.auth)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("read_token", &"***")
            .finish()
    }
}
