//! Every wire type of the relay protocol: its JSON shape (the names clients and relays already
//! send), a round trip through JSON, and the compatibility rule of the crate's documentation: a
//! reader ignores members added later, and members that are optional may be left out.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::{Duration, SystemTime};

use hookgate_protocol::{
    Accepted, CallbackAuth, CallbackKind, CreateSlot, Deadline, Delivery, ErrorAnswer,
    SlotCallbacks, SlotCreated, SlotId, Verdict,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// 2026-01-01T00:00:00.250Z, a whole number of milliseconds as the wire carries.
fn instant() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(1_767_225_600_250)
}

fn slot_id() -> SlotId {
    "019ad3c0c0007000800000000000f022".parse().unwrap()
}

/// Serializes `value`, checks the JSON is `expected`, reads it back to an equal value, and reads
/// it again with a member added by some later version.
fn holds<T>(value: &T, expected: Value)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let json = serde_json::to_value(value).unwrap();
    assert_eq!(json, expected);
    assert_eq!(&serde_json::from_value::<T>(json.clone()).unwrap(), value);
    let mut newer = json;
    newer
        .as_object_mut()
        .unwrap()
        .insert("addedLater".into(), json!({"any": ["shape", 1]}));
    assert_eq!(
        &serde_json::from_value::<T>(newer).unwrap(),
        value,
        "a member added later must be ignored"
    );
}

#[test]
fn create_slot() {
    holds(
        &CreateSlot {
            auth: CallbackAuth::HmacStandard,
            deadline: Deadline::At(instant()),
            label: "Integration-Tests".into(),
        },
        json!({"auth": "hmac-standard", "deadline": "2026-01-01T00:00:00.250Z", "label": "Integration-Tests"}),
    );
    holds(
        &CreateSlot {
            auth: CallbackAuth::Bearer,
            deadline: Deadline::In(600),
            label: String::new(),
        },
        json!({"auth": "bearer", "deadline": 600, "label": ""}),
    );
    // An older runner sent no label.
    let older: CreateSlot =
        serde_json::from_value(json!({"auth": "hmac-github", "deadline": 60})).unwrap();
    assert_eq!(older.label, "");
    for bad in [
        json!({"auth": "basic", "deadline": 60}),
        json!({"auth": "bearer"}),
        json!({"auth": "bearer", "deadline": "tomorrow"}),
        json!({"auth": "bearer", "deadline": -5}),
    ] {
        assert!(
            serde_json::from_value::<CreateSlot>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn slot_created() {
    let created = SlotCreated {
        id: slot_id(),
        callback_url: "https://relay.example/v1/callbacks/019ad3c0c0007000800000000000f022".into(),
        deadline: instant(),
        auth: CallbackAuth::Bearer,
        token: Some("slot-token".into()),
        read_token: "read-token".into(),
    };
    holds(
        &created,
        json!({
            "id": "019ad3c0c0007000800000000000f022",
            "callbackUrl": "https://relay.example/v1/callbacks/019ad3c0c0007000800000000000f022",
            "deadline": "2026-01-01T00:00:00.250Z",
            "auth": "bearer",
            "token": "slot-token",
            "readToken": "read-token",
        }),
    );
    let hmac = SlotCreated {
        token: None,
        auth: CallbackAuth::HmacGithub,
        ..created.clone()
    };
    let json = serde_json::to_value(&hmac).unwrap();
    assert!(
        json.get("token").is_none(),
        "no token member for HMAC slots"
    );
    holds(&hmac, json);
    // Secrets stay out of `Debug`.
    let debug = format!("{created:?}");
    assert!(
        !debug.contains("slot-token") && !debug.contains("read-token"),
        "{debug}"
    );
    // An id that is not a slot id is refused where it is read.
    let mut bad = serde_json::to_value(&created).unwrap();
    bad["id"] = json!("../../etc/passwd");
    assert!(serde_json::from_value::<SlotCreated>(bad).is_err());
}

#[test]
fn deliveries_and_the_long_poll_answer() {
    let delivery = Delivery {
        sequence: 3,
        received_at: instant(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("x-hub-signature-256".into(), "sha256=00ff".into()),
        ],
        body: b"{\"success\":true}\n\xff".to_vec(),
    };
    holds(
        &delivery,
        json!({
            "sequence": 3,
            "receivedAt": "2026-01-01T00:00:00.250Z",
            "headers": [["content-type", "application/json"], ["x-hub-signature-256", "sha256=00ff"]],
            "bodyBase64": "eyJzdWNjZXNzIjp0cnVlfQr/",
        }),
    );
    let answer = SlotCallbacks {
        id: slot_id(),
        deadline: instant(),
        callbacks: vec![delivery.clone()],
    };
    holds(
        &answer,
        json!({
            "id": "019ad3c0c0007000800000000000f022",
            "deadline": "2026-01-01T00:00:00.250Z",
            "callbacks": [serde_json::to_value(&delivery).unwrap()],
        }),
    );
    // A later member inside a delivery is ignored too.
    let mut newer = serde_json::to_value(&answer).unwrap();
    newer["callbacks"][0]["signedFor"] = json!("someone");
    assert_eq!(
        serde_json::from_value::<SlotCallbacks>(newer).unwrap(),
        answer
    );
    let mut bad = serde_json::to_value(&delivery).unwrap();
    bad["bodyBase64"] = json!("not base64!");
    assert!(serde_json::from_value::<Delivery>(bad).is_err());
    // Header values stay out of `Debug`.
    assert!(!format!("{delivery:?}").contains("00ff"));
}

#[test]
fn small_answers() {
    holds(
        &Accepted {
            slot: slot_id(),
            sequence: 1,
        },
        json!({"slot": "019ad3c0c0007000800000000000f022", "sequence": 1}),
    );
    holds(
        &ErrorAnswer {
            code: "no_slot".into(),
            detail: "there is no such slot".into(),
        },
        json!({"code": "no_slot", "detail": "there is no such slot"}),
    );
}

#[test]
fn verdicts_read_back_what_they_write_and_ignore_other_members() {
    for verdict in [
        Verdict {
            kind: CallbackKind::Final { success: true },
            message: None,
            slot: None,
            outputs: BTreeMap::new(),
        },
        Verdict {
            kind: CallbackKind::Final { success: false },
            message: Some("**2** tests failed: `a\"b`".into()),
            slot: Some("019ad3c0c0007000800000000000f022".into()),
            outputs: BTreeMap::from([("report".into(), "https://ci/7".into())]),
        },
        Verdict {
            kind: CallbackKind::Progress,
            message: Some("3 of 9 suites".into()),
            slot: None,
            outputs: BTreeMap::new(),
        },
    ] {
        assert_eq!(Verdict::parse(&verdict.to_body()), Ok(verdict));
    }
    let newer = br#"{"success": true, "mdMessage": "ok", "attempt": {"n": 2}}"#;
    assert_eq!(
        Verdict::parse(newer),
        Ok(Verdict {
            kind: CallbackKind::Final { success: true },
            message: Some("ok".into()),
            slot: None,
            outputs: BTreeMap::new(),
        })
    );
    // What an older writer sends (no `final`, no `outputs`) is a verdict without outputs.
    assert_eq!(
        Verdict::parse(br#"{"success": false}"#).map(|v| (v.kind, v.outputs.len())),
        Ok((CallbackKind::Final { success: false }, 0))
    );
}

#[test]
fn slot_ids_are_32_lower_case_hex_digits() {
    let id = SlotId::random();
    assert_eq!(id.as_str().len(), 32);
    assert_eq!(id.as_str().parse::<SlotId>().unwrap(), id);
    for bad in [
        "",
        "0123",
        "019AD3C0C0007000800000000000F022",
        "019ad3c0c0007000800000000000f02g",
    ] {
        assert!(bad.parse::<SlotId>().is_err(), "{bad}");
    }
    assert_eq!(slot_id().as_u128(), 0x019ad3c0c0007000800000000000f022);
}
