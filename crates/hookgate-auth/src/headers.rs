//! Reading request headers without depending on an HTTP library: the relay, the engine and the
//! tests each keep headers their own way, and all they need to offer is a case-insensitive
//! lookup by name.

use std::collections::{BTreeMap, HashMap};

/// Something headers can be looked up in. Names compare case-insensitively (HTTP header names
/// are case-insensitive); when a name repeats, the first value counts.
pub trait HeaderSource {
    /// The value of the first header called `name`, if any.
    fn header(&self, name: &str) -> Option<&str>;
}

impl<K: AsRef<str>, V: AsRef<str>> HeaderSource for [(K, V)] {
    fn header(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(key, _)| key.as_ref().eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_ref())
    }
}

impl<K: AsRef<str>, V: AsRef<str>> HeaderSource for Vec<(K, V)> {
    fn header(&self, name: &str) -> Option<&str> {
        self.as_slice().header(name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>, const N: usize> HeaderSource for [(K, V); N] {
    fn header(&self, name: &str) -> Option<&str> {
        self.as_slice().header(name)
    }
}

impl<V: AsRef<str>> HeaderSource for BTreeMap<String, V> {
    fn header(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_ref())
    }
}

impl<V: AsRef<str>, S: std::hash::BuildHasher> HeaderSource for HashMap<String, V, S> {
    fn header(&self, name: &str) -> Option<&str> {
        if let Some(value) = self.get(name) {
            return Some(value.as_ref());
        }
        self.iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_ref())
    }
}

/// A present, non-blank header value, trimmed.
pub(crate) fn present<'h, H: HeaderSource + ?Sized>(headers: &'h H, name: &str) -> Option<&'h str> {
    headers
        .header(name)
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_ignores_case_and_takes_the_first_value() {
        let headers = vec![
            ("Webhook-Id".to_string(), "first".to_string()),
            ("webhook-id".to_string(), "second".to_string()),
        ];
        assert_eq!(headers.header("webhook-id"), Some("first"));
        assert_eq!(headers.header("WEBHOOK-ID"), Some("first"));
        assert_eq!(headers.header("webhook-timestamp"), None);

        let map: HashMap<String, &str> = [("X-Hub-Signature-256".to_string(), "v")].into();
        assert_eq!(map.header("x-hub-signature-256"), Some("v"));
        let map: BTreeMap<String, String> = [("A".to_string(), "b".to_string())].into();
        assert_eq!(map.header("a"), Some("b"));
    }

    #[test]
    fn blank_values_count_as_absent() {
        let headers = [("webhook-id", "  ")];
        assert_eq!(present(&headers, "webhook-id"), None);
        let headers = [("webhook-id", " msg_1 ")];
        assert_eq!(present(&headers, "webhook-id"), Some("msg_1"));
    }
}
