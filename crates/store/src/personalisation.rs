//! How a profile's personalisation values are kept: one JSON text column
//! (hex for keys, digits for codes), read only when a package is built.
//!
//! The values are secrets (K, OPc, codes). They are never logged; a
//! deployment that needs encryption at rest should put the database on an
//! encrypted volume (PostgreSQL: TDE or disk encryption).

use ferrosim_saip::{AdmKey, Iccid, Imsi, Key128, Personalisation, Pin, Puk, decode_code_digits};
use ferrosim_smdp::store::StoreError;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Default)]
struct Stored {
    iccid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    imsi: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mnc_len: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    opc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pin1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pin2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    puk1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    puk2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    adm1: Option<String>,
}

/// The stored text of a personalisation.
pub(crate) fn encode_personalisation(p: &Personalisation) -> String {
    let code = |b: &[u8; 8]| decode_code_digits(b).unwrap_or_else(|| hex::encode(b));
    let stored = Stored {
        iccid: p.iccid.as_str().to_owned(),
        imsi: p.imsi.as_ref().map(|i| i.as_str().to_owned()),
        mnc_len: p.imsi.as_ref().and_then(Imsi::mnc_len),
        k: p.k.as_ref().map(|k| hex::encode(k.as_bytes())),
        opc: p.opc.as_ref().map(|k| hex::encode(k.as_bytes())),
        pin1: p.pin1.as_ref().map(|c| code(c.as_bytes())),
        pin2: p.pin2.as_ref().map(|c| code(c.as_bytes())),
        puk1: p.puk1.as_ref().map(|c| code(c.as_bytes())),
        puk2: p.puk2.as_ref().map(|c| code(c.as_bytes())),
        adm1: p.adm1.as_ref().map(|a| hex::encode(a.as_bytes())),
    };
    serde_json::to_string(&stored).unwrap_or_default()
}

/// Reads back what [`encode_personalisation`] wrote.
pub(crate) fn decode_personalisation(text: &str) -> Result<Personalisation, StoreError> {
    let bad = |what: &str| StoreError::Corrupt(format!("stored personalisation: invalid {what}"));
    let s: Stored = serde_json::from_str(text).map_err(|_| bad("JSON"))?;
    let iccid = Iccid::new(&s.iccid).map_err(|_| bad("ICCID"))?;
    let imsi = match (s.imsi, s.mnc_len) {
        (Some(i), Some(n)) => Some(Imsi::with_mnc_len(&i, n).map_err(|_| bad("IMSI"))?),
        (Some(i), None) => Some(Imsi::new(&i).map_err(|_| bad("IMSI"))?),
        (None, _) => None,
    };
    let key = |v: Option<String>, f: &'static str| {
        v.map(|h| Key128::from_hex(f, &h).map_err(|_| bad(f)))
            .transpose()
    };
    let mut p = Personalisation::new(iccid);
    p.imsi = imsi;
    p.k = key(s.k, "K")?;
    p.opc = key(s.opc, "OPc")?;
    p.pin1 = s
        .pin1
        .map(|c| Pin::new("PIN1", &c).map_err(|_| bad("PIN1")))
        .transpose()?;
    p.pin2 = s
        .pin2
        .map(|c| Pin::new("PIN2", &c).map_err(|_| bad("PIN2")))
        .transpose()?;
    p.puk1 = s
        .puk1
        .map(|c| Puk::new("PUK1", &c).map_err(|_| bad("PUK1")))
        .transpose()?;
    p.puk2 = s
        .puk2
        .map(|c| Puk::new("PUK2", &c).map_err(|_| bad("PUK2")))
        .transpose()?;
    p.adm1 = s
        .adm1
        .map(|c| AdmKey::new("ADM1", &c).map_err(|_| bad("ADM1")))
        .transpose()?;
    Ok(p)
}
