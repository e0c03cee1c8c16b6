//! `Authorization: Bearer <token>`: taking the token out of the header and comparing it with
//! the expected one in constant time.

use subtle::ConstantTimeEq;

/// The token of an `Authorization: Bearer <token>` header value. The scheme name is
/// case-insensitive (RFC 9110); `None` for another scheme or an empty token.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let authorization = authorization.trim();
    let (scheme, token) = authorization.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then_some(token)
}

/// Whether `authorization` (the header value, `None` when absent) carries exactly
/// `expected_token` as a bearer token. The bytes are compared in constant time; only the
/// length can show through timing, and tokens' lengths are not secret.
pub fn bearer_matches(authorization: Option<&str>, expected_token: &str) -> bool {
    let Some(presented) = authorization.and_then(bearer_token) else {
        return false;
    };
    if expected_token.is_empty() {
        return false;
    }
    presented.as_bytes().ct_eq(expected_token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_the_token_of_a_bearer_header() {
        assert_eq!(bearer_token("Bearer abc.def"), Some("abc.def"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("BEARER abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("abc"), None);
    }

    #[test]
    fn matches_only_the_exact_token() {
        assert!(bearer_matches(Some("Bearer t0k3n"), "t0k3n"));
        assert!(bearer_matches(Some("bearer t0k3n"), "t0k3n"));
        assert!(!bearer_matches(Some("Bearer t0k3N"), "t0k3n"));
        assert!(!bearer_matches(Some("Bearer t0k3"), "t0k3n"));
        assert!(!bearer_matches(Some("Bearer t0k3nn"), "t0k3n"));
        assert!(!bearer_matches(Some("t0k3n"), "t0k3n"));
        assert!(!bearer_matches(None, "t0k3n"));
        assert!(!bearer_matches(Some("Bearer x"), ""));
    }
}
