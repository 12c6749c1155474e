//! Loading certificates and keys from PEM or DER, from files or bytes, so
//! that SGP.26 test certificates, production certificates and generated test
//! hierarchies can all be used.
//!
//! The format is detected from the content: anything holding a PEM
//! `-----BEGIN` line is read as PEM (text around the blocks is ignored, as
//! in `openssl x509 -text` output), anything else as DER.

use std::fs;
use std::path::Path;

use ferrosim_crypto::key::SoftwareKey;
use zeroize::Zeroizing;

use crate::cert::RspCertificate;
use crate::error::{Error, Result};

const CERTIFICATE_LABEL: &str = "CERTIFICATE";
const PKCS8_LABEL: &str = "PRIVATE KEY";

/// Parses one certificate from PEM (the first `CERTIFICATE` block) or DER.
pub fn certificate_from_bytes(bytes: &[u8]) -> Result<RspCertificate> {
    if is_pem(bytes) {
        let block = pem_blocks(bytes)?
            .into_iter()
            .find(|p| p.tag() == CERTIFICATE_LABEL)
            .ok_or(Error::NoPemBlock {
                expected: CERTIFICATE_LABEL,
            })?;
        RspCertificate::from_der(block.contents())
    } else {
        RspCertificate::from_der(bytes)
    }
}

/// Parses every certificate of a PEM bundle, or the single certificate of a DER file.
pub fn certificates_from_bytes(bytes: &[u8]) -> Result<Vec<RspCertificate>> {
    if !is_pem(bytes) {
        return Ok(vec![RspCertificate::from_der(bytes)?]);
    }
    let certs: Vec<RspCertificate> = pem_blocks(bytes)?
        .iter()
        .filter(|p| p.tag() == CERTIFICATE_LABEL)
        .map(|p| RspCertificate::from_der(p.contents()))
        .collect::<Result<_>>()?;
    if certs.is_empty() {
        return Err(Error::NoPemBlock {
            expected: CERTIFICATE_LABEL,
        });
    }
    Ok(certs)
}

/// Reads one certificate from a PEM or DER file.
pub fn certificate_from_file(path: &Path) -> Result<RspCertificate> {
    certificate_from_bytes(&read(path)?)
}

/// Reads every certificate from a PEM bundle or a DER file.
pub fn certificates_from_file(path: &Path) -> Result<Vec<RspCertificate>> {
    certificates_from_bytes(&read(path)?)
}

/// Parses a P-256 private key: PKCS#8 or SEC1 (`EC PRIVATE KEY`), PEM or DER.
pub fn key_from_bytes(bytes: &[u8]) -> Result<SoftwareKey> {
    Ok(if is_pem(bytes) {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| Error::Pem("PEM key file is not valid UTF-8 text".into()))?;
        SoftwareKey::from_pem(text)?
    } else {
        SoftwareKey::from_der(bytes)?
    })
}

/// Reads a P-256 private key file: PKCS#8 or SEC1, PEM or DER.
pub fn key_from_file(path: &Path) -> Result<SoftwareKey> {
    let bytes = Zeroizing::new(read(path)?);
    key_from_bytes(&bytes)
}

/// Whether the bytes look like PEM rather than DER.
pub fn is_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

/// The DER of the first PKCS#8 `PRIVATE KEY` block of a PEM document.
pub(crate) fn pkcs8_der_from_pem(bytes: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let block = pem_blocks(bytes)?
        .into_iter()
        .find(|p| p.tag() == PKCS8_LABEL)
        .ok_or(Error::NoPemBlock {
            expected: PKCS8_LABEL,
        })?;
    Ok(Zeroizing::new(block.into_contents()))
}

fn pem_blocks(bytes: &[u8]) -> Result<Vec<pem::Pem>> {
    pem::parse_many(bytes).map_err(|e| Error::Pem(e.to_string()))
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}
