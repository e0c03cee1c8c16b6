//! What a run writes down as it goes, so that a run stopped midway (the server driving it was
//! killed) resumes where it was instead of starting over: a step about to send its request
//! (and the idempotency key it sends), the answer it got, and how it ended. A run on a runner
//! keeps no journal; the relay's gates keep theirs in the relay's store.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::Conclusion;
use crate::request::HttpResponse;

/// Where a run's steps are written down and read back.
pub trait Journal: Send + Sync {
    /// What was written for step `step` by an earlier attempt of this run, if anything.
    fn recall<'a>(&'a self, step: &'a str) -> BoxFuture<'a, Result<Option<StepRecord>, String>>;

    /// Writes `record` for step `step`, durably, replacing what was there; an error stops the
    /// step (nothing is sent that could not be written down).
    fn record<'a>(
        &'a self,
        step: &'a str,
        record: &'a StepRecord,
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// How far a step got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum StepRecord {
    /// Its request is about to be sent with this key: sent again after a restart, with the
    /// same key, so the service can tell the repeat.
    #[serde(rename_all = "camelCase")]
    Sending {
        /// The `Idempotency-Key`.
        idempotency_key: String,
    },
    /// Its request was answered: after a restart it is not sent again, and the wait goes on.
    #[serde(rename_all = "camelCase")]
    Answered {
        /// The `Idempotency-Key` it was sent with.
        idempotency_key: String,
        /// The answer.
        response: RecordedResponse,
    },
    /// It ended.
    #[serde(rename_all = "camelCase")]
    Finished {
        /// How.
        conclusion: Conclusion,
        /// Why (masked).
        message: String,
        /// The outputs it returned.
        outputs: BTreeMap<String, String>,
        /// `steps['NAME']` for later templates.
        result: Value,
    },
}

/// An answer as written down (the body as text: it is read as JSON or text only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedResponse {
    /// The status code.
    pub status: u16,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
    /// The final URL.
    pub url: String,
}

impl From<&HttpResponse> for RecordedResponse {
    fn from(response: &HttpResponse) -> Self {
        RecordedResponse {
            status: response.status,
            headers: response.headers.clone(),
            body: response.text(),
            url: response.url.clone(),
        }
    }
}

impl From<RecordedResponse> for HttpResponse {
    fn from(recorded: RecordedResponse) -> Self {
        HttpResponse {
            status: recorded.status,
            headers: recorded.headers,
            body: recorded.body.into_bytes(),
            truncated: false,
            url: recorded.url,
        }
    }
}
