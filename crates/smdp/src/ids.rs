//! Identifiers of the download protocol, as validating newtypes, from
//! `ferrosim-ids`: [`MatchingId`], [`TransactionId`], [`OperatorId`] and
//! their [`IdError`].
//!
//! Each type checks its value once, on construction, so the rest of the
//! SM-DP+ can rely on it (the same idea as rustls' `ServerName`). An
//! [`IdError`] converts into [`Es2Error`] and [`Es9Error`] with `?`.

pub use ferrosim_ids::{IdError, MatchingId, OperatorId, TransactionId};

use crate::es2::Es2Error;
use crate::es9::Es9Error;

impl From<IdError> for Es2Error {
    /// An invalid EID is [`Es2Error::InvalidEid`]; any other invalid field is
    /// [`Es2Error::Invalid`] naming the ES2+ field.
    fn from(e: IdError) -> Self {
        match e {
            IdError::Eid { .. } | IdError::EidPrefix { .. } => Es2Error::InvalidEid,
            IdError::MatchingId => Es2Error::Invalid("matchingId"),
            IdError::OperatorId => Es2Error::Invalid("functionRequesterIdentifier"),
            IdError::TransactionId => Es2Error::Invalid("transactionId"),
            IdError::IccidLength { .. }
            | IdError::IccidNotDigits
            | IdError::IccidCheckDigit { .. }
            | IdError::IccidBcd => Es2Error::Invalid("iccid"),
            IdError::Timestamp { .. } => Es2Error::Invalid("timestamp"),
            _ => Es2Error::Invalid("identifier"),
        }
    }
}

impl From<IdError> for Es9Error {
    /// An invalid matching id is [`Es9Error::MatchingIdRefused`]; any other
    /// invalid identifier is a [`Es9Error::BadRequest`] saying what is wrong.
    fn from(e: IdError) -> Self {
        match e {
            IdError::MatchingId => Es9Error::MatchingIdRefused,
            other => Es9Error::BadRequest(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_matching_ids_are_valid_and_distinct() {
        let mut rng = rand::rng();
        let a = MatchingId::generate(&mut rng);
        let b = MatchingId::generate(&mut rng);
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 23);
        assert_eq!(MatchingId::new(a.as_str()).unwrap(), a);
    }

    #[test]
    fn matching_id_rules() {
        assert!(MatchingId::new("04386-AGYFT-A74Y8-3F815").is_ok());
        assert!(MatchingId::new("").is_err());
        assert!(MatchingId::new("a b").is_err());
        assert!(MatchingId::new("x$y").is_err());
        assert!(MatchingId::new("é").is_err());
        assert!(MatchingId::new("a".repeat(65)).is_err());
    }

    #[test]
    fn transaction_id_hex() {
        let t = TransactionId::from_hex("0a0B").unwrap();
        assert_eq!(t.as_bytes(), &[0x0A, 0x0B]);
        assert_eq!(t.to_hex(), "0A0B");
        assert!(TransactionId::from_hex("").is_err());
        assert!(TransactionId::from_hex("zz").is_err());
        assert!(TransactionId::from_hex(&"00".repeat(17)).is_err());
    }

    #[test]
    fn id_errors_map_to_status_codes() {
        use crate::status::StatusCode;
        let eid = ferrosim_ids::Eid::parse("1").unwrap_err();
        assert_eq!(Es2Error::from(eid).status(), StatusCode::EID_INVALID);
        let m = MatchingId::new("").unwrap_err();
        assert!(matches!(
            Es2Error::from(m.clone()),
            Es2Error::Invalid("matchingId")
        ));
        assert!(matches!(Es9Error::from(m), Es9Error::MatchingIdRefused));
        let t = TransactionId::from_hex("zz").unwrap_err();
        assert!(matches!(Es9Error::from(t), Es9Error::BadRequest(_)));
        let iccid = ferrosim_ids::Iccid::new("1").unwrap_err();
        assert!(matches!(Es2Error::from(iccid), Es2Error::Invalid("iccid")));
    }

    proptest! {
        #[test]
        fn garbage_never_panics(s in ".{0,80}") {
            let _ = MatchingId::new(s.clone());
            let _ = TransactionId::from_hex(&s);
            let _ = OperatorId::new(s);
        }
    }
}
