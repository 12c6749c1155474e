//! Filling the SM-DP+ with what operators sell: operators, profile types
//! (imported unprotected profile packages) and personalised profiles, from an
//! operator batch file or generated with fresh keys.
//!
//! These are the administrative entry points behind `ferrosim operator`,
//! `ferrosim profile-type` and `ferrosim profiles`; they validate everything
//! before anything is stored.

use ferrosim_saip::{Iccid, Imsi, Personalisation, ProfilePackage, parse_batch};
use rand::CryptoRng;
use thiserror::Error;

use crate::es2::token_hash;
use crate::ids::OperatorId;
use crate::metadata::{PolicyRules, ProfileClass, ProfileTypeMetadata};
use crate::order::ProfileRecord;
use crate::store::{NewProfile, Operator, ProfileTypeRecord, Store, StoreError};
use crate::time::Timestamp;

/// Why an import was refused.
#[derive(Debug, Error)]
pub enum InventoryError {
    /// The package is not a valid SAIP profile package.
    #[error("profile package: {0}")]
    Package(ferrosim_saip::Error),
    /// The batch file is malformed (the message names the line).
    #[error("batch file: {0}")]
    Batch(ferrosim_saip::Error),
    /// A profile of the batch does not personalise the type's package.
    #[error("profile {iccid}: {source}")]
    Personalise {
        /// The profile.
        iccid: Iccid,
        /// Why.
        source: ferrosim_saip::Error,
    },
    /// The operator is unknown.
    #[error("unknown operator {0}")]
    UnknownOperator(OperatorId),
    /// The profile type is unknown.
    #[error("unknown profile type {0}")]
    UnknownProfileType(String),
    /// A generated range does not fit (ICCID or IMSI digits overflow).
    #[error("number range: {0}")]
    Range(String),
    /// A field of a profile type is invalid (the message names the field
    /// and the rule); checked at import so that no download fails on it later.
    #[error("{field}: {rule}")]
    InvalidField {
        /// The field, as the command line names it.
        field: &'static str,
        /// What is wrong.
        rule: String,
    },
    /// A profile type of this name exists; replacing it must be asked for.
    #[error("profile type {0} exists already; a new version of it must be asked for explicitly")]
    ProfileTypeExists(String),
    /// The database refused (duplicate ICCID...).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates or replaces an operator and returns the API token to give it.
/// Only the token's hash is stored.
pub async fn add_operator<S: Store>(
    store: &S,
    id: OperatorId,
    name: String,
    callback_url: Option<String>,
    rng: &mut impl CryptoRng,
) -> Result<String, InventoryError> {
    let token = new_operator_token(rng);
    store
        .put_operator(&Operator {
            id,
            name,
            token_hash: token_hash(&token),
            callback_url,
        })
        .await?;
    Ok(token)
}

/// A new ES2+ API token for an operator: `fst_` and 64 hex digits (256
/// random bits). Store only its [`token_hash`].
pub fn new_operator_token(rng: &mut impl CryptoRng) -> String {
    let mut raw = [0u8; 32];
    rng.fill_bytes(&mut raw);
    format!("fst_{}", hex::encode(raw))
}

/// What to import as a profile type.
#[derive(Debug, Clone)]
pub struct ProfileTypeImport {
    /// Owner.
    pub operator: OperatorId,
    /// Name used in ES2+ `profileType`.
    pub name: String,
    /// The unprotected profile package (SAIP DER).
    pub package: Vec<u8>,
    /// Service provider name; defaults to the package's SPN, else the operator name.
    pub service_provider_name: Option<String>,
    /// Profile name; defaults to the package header's profile type.
    pub profile_name: Option<String>,
    /// Profile class (default operational).
    pub profile_class: ProfileClass,
    /// Profile policy rules.
    pub policy_rules: PolicyRules,
    /// MCC+MNC of the profile owner; defaults to the package's IMSI's.
    pub owner_mcc_mnc: Option<String>,
    /// The profile owner allows the SGP.32 fallback attribute on these
    /// profiles: every download's metadata carries `fallbackAllowed`.
    pub fallback_allowed: bool,
}

/// Validates a package and every field of a profile type and stores it as
/// a new profile type; a name the operator already uses is refused
/// ([`InventoryError::ProfileTypeExists`]; see [`replace_profile_type`]).
pub async fn import_profile_type<S: Store>(
    store: &S,
    import: ProfileTypeImport,
    now: Timestamp,
) -> Result<ProfileTypeRecord, InventoryError> {
    import_or_replace(store, import, now, false).await
}

/// Like [`import_profile_type`], but an existing profile type of that name
/// gets a new version: orders made from now on use it, the orders made
/// before keep the version they were made with (all versions are kept).
pub async fn replace_profile_type<S: Store>(
    store: &S,
    import: ProfileTypeImport,
    now: Timestamp,
) -> Result<ProfileTypeRecord, InventoryError> {
    import_or_replace(store, import, now, true).await
}

async fn import_or_replace<S: Store>(
    store: &S,
    import: ProfileTypeImport,
    now: Timestamp,
    replace: bool,
) -> Result<ProfileTypeRecord, InventoryError> {
    check_profile_type_name(&import.name)?;
    if let Some(owner) = &import.owner_mcc_mnc {
        check_mcc_mnc(owner)?;
    }
    let version = match store.profile_type(&import.operator, &import.name).await? {
        Some(_) if !replace => return Err(InventoryError::ProfileTypeExists(import.name)),
        // A new version: the orders made so far keep theirs.
        Some(latest) => latest.version.saturating_add(1),
        None => 1,
    };
    let operator = store
        .operator(&import.operator)
        .await?
        .ok_or_else(|| InventoryError::UnknownOperator(import.operator.clone()))?;
    let package = ProfilePackage::parse(&import.package).map_err(InventoryError::Package)?;
    package.validate_schema().map_err(InventoryError::Package)?;
    let defaults = package
        .metadata_defaults()
        .map_err(InventoryError::Package)?;
    let summary = package.summary().map_err(InventoryError::Package)?;
    let owner = import.owner_mcc_mnc.or_else(|| {
        let imsi = summary.imsi.as_ref()?;
        Some(format!("{}{}", imsi.mcc(), imsi.mnc()?))
    });
    let record = ProfileTypeRecord {
        operator: import.operator,
        name: import.name,
        package: import.package,
        metadata: ProfileTypeMetadata {
            service_provider_name: import
                .service_provider_name
                .or(defaults.spn_hint)
                .unwrap_or(operator.name),
            profile_name: import.profile_name.unwrap_or(defaults.profile_name),
            profile_class: import.profile_class,
            policy_rules: import.policy_rules,
            owner_mcc_mnc: owner,
            fallback_allowed: import.fallback_allowed,
        },
        created_at: now,
        version,
    };
    check_metadata(&record.metadata)?;
    store.put_profile_type(&record).await?;
    Ok(record)
}

/// Longest profile type name (ES2+ `profileType` is free text; operators'
/// systems commonly allow 64 characters).
pub const MAX_PROFILE_TYPE_NAME: usize = 64;

/// A profile type name: 1 to [`MAX_PROFILE_TYPE_NAME`] characters, no
/// control characters, no blanks at either end (it is matched exactly
/// against ES2+ `profileType`).
pub fn check_profile_type_name(name: &str) -> Result<(), InventoryError> {
    let bad = |rule: &str| InventoryError::InvalidField {
        field: "--name",
        rule: format!("`{name}`: {rule}"),
    };
    if name.is_empty() {
        return Err(bad("a profile type name is never empty"));
    }
    if name.chars().count() > MAX_PROFILE_TYPE_NAME {
        return Err(bad(&format!("at most {MAX_PROFILE_TYPE_NAME} characters")));
    }
    if name.chars().any(char::is_control) || name.trim() != name {
        return Err(bad(
            "no control characters and no blanks at either end (ES2+ profileType is matched exactly)",
        ));
    }
    Ok(())
}

/// A profile owner MCC+MNC: 3 MCC digits then 2 or 3 MNC digits (3GPP TS
/// 23.003), what `profileOwner` carries in the metadata of every download.
pub fn check_mcc_mnc(owner: &str) -> Result<(), InventoryError> {
    let digits = owner.bytes().all(|b| b.is_ascii_digit());
    if !digits || !(owner.len() == 5 || owner.len() == 6) {
        return Err(InventoryError::InvalidField {
            field: "--owner",
            rule: format!(
                "`{owner}` is not an MCC+MNC: 5 or 6 digits (3-digit MCC, 2- or 3-digit MNC), e.g. 00101 or 310410"
            ),
        });
    }
    Ok(())
}

/// Checks metadata against what a download will encode (SGP.22
/// `StoreMetadataRequest`: serviceProviderName at most 32 characters,
/// profileName at most 64), and encodes it once as a download would.
fn check_metadata(m: &ProfileTypeMetadata) -> Result<(), InventoryError> {
    let sized = |field: &'static str, value: &str, max: usize| {
        if value.chars().count() > max || value.chars().any(char::is_control) {
            Err(InventoryError::InvalidField {
                field,
                rule: format!(
                    "`{value}`: at most {max} characters without control characters (SGP.22 StoreMetadataRequest)"
                ),
            })
        } else {
            Ok(())
        }
    };
    sized("--service-provider", &m.service_provider_name, 32)?;
    sized("--profile-name", &m.profile_name, 64)?;
    if let Some(owner) = &m.owner_mcc_mnc {
        check_mcc_mnc(owner)?;
    }
    let probe =
        Iccid::from_body("894400000000000000").map_err(|e| InventoryError::Range(e.to_string()))?;
    crate::metadata::store_metadata_der(&probe, m, "smdp.example").map_err(|e| {
        InventoryError::InvalidField {
            field: "metadata",
            rule: e.to_string(),
        }
    })?;
    Ok(())
}

/// Imports the profiles of an operator batch file (CSV, see `ferrosim_saip`)
/// for a profile type, after checking that each one personalises the type's
/// package. All or nothing.
pub async fn import_batch<S: Store>(
    store: &S,
    operator: &OperatorId,
    profile_type: &str,
    csv: &str,
    now: Timestamp,
) -> Result<u64, InventoryError> {
    let personalisations = parse_batch(csv).map_err(InventoryError::Batch)?;
    insert(store, operator, profile_type, personalisations, now).await
}

/// A run of profiles to generate: consecutive ICCIDs and IMSIs.
#[derive(Debug, Clone)]
pub struct ProfileRange {
    /// How many.
    pub count: u64,
    /// The first ICCID (its check digit is recomputed for the others).
    pub first_iccid: Iccid,
    /// The first IMSI (its MNC length is kept).
    pub first_imsi: Imsi,
}

/// Generates the profiles of `range` with fresh random K and OPc.
pub async fn generate_profiles<S: Store>(
    store: &S,
    operator: &OperatorId,
    profile_type: &str,
    range: &ProfileRange,
    rng: &mut impl CryptoRng,
    now: Timestamp,
) -> Result<u64, InventoryError> {
    let (count, first_iccid, first_imsi) = (range.count, &range.first_iccid, &range.first_imsi);
    let iccid_body = &first_iccid.as_str()[..first_iccid.as_str().len() - 1];
    let mut out = Vec::new();
    for i in 0..count {
        let iccid = Iccid::from_body(&add_to_digits(iccid_body, i)?)
            .map_err(|e| InventoryError::Range(e.to_string()))?;
        let imsi_digits = add_to_digits(first_imsi.as_str(), i)?;
        let imsi = match first_imsi.mnc_len() {
            Some(n) => Imsi::with_mnc_len(&imsi_digits, n),
            None => Imsi::new(&imsi_digits),
        }
        .map_err(|e| InventoryError::Range(e.to_string()))?;
        let mut p = Personalisation::new(iccid).with_random_keys(rng);
        p.imsi = Some(imsi);
        out.push(p);
    }
    insert(store, operator, profile_type, out, now).await
}

async fn insert<S: Store>(
    store: &S,
    operator: &OperatorId,
    profile_type: &str,
    personalisations: Vec<Personalisation>,
    now: Timestamp,
) -> Result<u64, InventoryError> {
    let t = store
        .profile_type(operator, profile_type)
        .await?
        .ok_or_else(|| InventoryError::UnknownProfileType(profile_type.to_owned()))?;
    let package = ProfilePackage::parse(&t.package).map_err(InventoryError::Package)?;
    let mut rows = Vec::with_capacity(personalisations.len());
    for p in personalisations {
        package
            .personalise(&p)
            .map_err(|source| InventoryError::Personalise {
                iccid: p.iccid.clone(),
                source,
            })?;
        rows.push(NewProfile {
            record: ProfileRecord::new_available(
                p.iccid.clone(),
                operator.clone(),
                profile_type.to_owned(),
                now,
            ),
            personalisation: p,
        });
    }
    Ok(store.insert_profiles(&rows).await?)
}

/// `digits + n`, keeping the number of digits.
fn add_to_digits(digits: &str, n: u64) -> Result<String, InventoryError> {
    let width = digits.len();
    let (head, tail) = digits.split_at(width.saturating_sub(18));
    let value: u64 = tail
        .parse()
        .map_err(|_| InventoryError::Range(format!("`{digits}` is not a number")))?;
    let sum = value
        .checked_add(n)
        .filter(|s| s.to_string().len() <= tail.len())
        .ok_or_else(|| InventoryError::Range(format!("{digits} + {n} overflows {width} digits")))?;
    Ok(format!("{head}{sum:0w$}", w = tail.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digit_arithmetic() {
        assert_eq!(
            add_to_digits("001010000000009", 1).unwrap(),
            "001010000000010"
        );
        assert_eq!(
            add_to_digits("8949440000000000001", 41).unwrap(),
            "8949440000000000042"
        );
        assert!(add_to_digits("99", 1).is_err());
        assert!(add_to_digits("9x", 1).is_err());
    }
}
