//! The eUICC identifier (EID) and EID prefixes, from `ferrosim-ids`.
//!
//! An EID is 32 decimal digits (GSMA SGP.29) whose last two are ISO 7064
//! MOD 97-10 check digits; an [`EidPrefix`] is the EID range an EUM
//! certificate restricts its eUICCs to. The types live in `ferrosim-ids`;
//! their errors convert into this crate's [`Error::InvalidEid`] and
//! [`Error::InvalidEidPrefix`].
//!
//! [`Error::InvalidEid`]: crate::Error::InvalidEid
//! [`Error::InvalidEidPrefix`]: crate::Error::InvalidEidPrefix

pub use ferrosim_ids::{EID_DIGITS, Eid, EidPrefix};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn eid_errors_become_this_crates_variants() {
        let err = Error::from(Eid::parse("89049032123451234512345678901234").unwrap_err());
        assert!(
            matches!(err, Error::InvalidEid { problem, .. } if problem.contains("check digits"))
        );
        let err = Error::from(EidPrefix::parse("89x").unwrap_err());
        assert!(matches!(err, Error::InvalidEidPrefix(v) if v == "89x"));
        let err = Error::from(crate::KeyId::from_bytes(&[]).unwrap_err());
        assert!(matches!(
            err,
            Error::InvalidId(ferrosim_ids::IdError::CiKeyId { .. })
        ));
    }
}
