//! Operator batch files: one personalisation per row of a CSV file.
//!
//! The format is described in the crate documentation (section "Batch
//! files"). Every error names the line it was found on.

use std::collections::HashMap;

use crate::error::Error;
use crate::identity::{Iccid, Imsi};
use crate::personalise::Personalisation;
use crate::secrets::{AdmKey, Key128, Pin, Puk};

/// The columns a batch file may have; the first four are required.
const COLUMNS: [&str; 9] = [
    "iccid", "imsi", "ki", "opc", "pin1", "puk1", "pin2", "puk2", "adm1",
];
const REQUIRED: usize = 4;

/// Parses a batch file into one [`Personalisation`] per data row.
pub fn parse_batch(input: &str) -> Result<Vec<Personalisation>, Error> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .flexible(false)
        .from_reader(input.as_bytes());
    let headers = reader.headers().map_err(|e| syntax(&e, 1))?.clone();
    let mut index: [Option<usize>; COLUMNS.len()] = [None; COLUMNS.len()];
    for (position, name) in headers.iter().enumerate() {
        let name = name.trim_start_matches('\u{feff}').to_ascii_lowercase();
        let name = if name == "k" { "ki".to_owned() } else { name };
        let slot = COLUMNS
            .iter()
            .position(|c| *c == name)
            .ok_or_else(|| Error::BatchHeader {
                reason: format!("unknown column '{name}' (expected {})", COLUMNS.join(",")),
            })?;
        if index[slot].replace(position).is_some() {
            return Err(Error::BatchHeader {
                reason: format!("column '{name}' appears twice"),
            });
        }
    }
    if let Some(missing) = (0..REQUIRED).find(|i| index[*i].is_none()) {
        return Err(Error::BatchMissingColumn {
            column: COLUMNS[missing],
        });
    }

    let mut out = Vec::new();
    let mut seen_iccid: HashMap<String, u64> = HashMap::new();
    let mut seen_imsi: HashMap<String, u64> = HashMap::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            syntax(&e, line)
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let cell = |slot: usize| -> Option<&str> {
            index[slot]
                .and_then(|i| record.get(i))
                .filter(|v| !v.is_empty())
        };
        let required = |slot: usize| {
            cell(slot).ok_or(Error::BatchEmptyValue {
                line,
                column: COLUMNS[slot],
            })
        };
        let wrap = |slot: usize| {
            move |e: Error| Error::BatchValue {
                line,
                column: COLUMNS[slot],
                source: Box::new(e),
            }
        };
        let iccid = Iccid::new(required(0)?)
            .map_err(Error::from)
            .map_err(wrap(0))?;
        let imsi: Imsi = required(1)?.parse().map_err(Error::from).map_err(wrap(1))?;
        let mut p = Personalisation::new(iccid);
        p.k = Some(Key128::from_hex("Ki", required(2)?).map_err(wrap(2))?);
        p.opc = Some(Key128::from_hex("OPc", required(3)?).map_err(wrap(3))?);
        p.pin1 = cell(4)
            .map(|v| Pin::new("PIN1", v))
            .transpose()
            .map_err(wrap(4))?;
        p.puk1 = cell(5)
            .map(|v| Puk::new("PUK1", v))
            .transpose()
            .map_err(wrap(5))?;
        p.pin2 = cell(6)
            .map(|v| Pin::new("PIN2", v))
            .transpose()
            .map_err(wrap(6))?;
        p.puk2 = cell(7)
            .map(|v| Puk::new("PUK2", v))
            .transpose()
            .map_err(wrap(7))?;
        p.adm1 = cell(8)
            .map(|v| AdmKey::new("ADM1", v))
            .transpose()
            .map_err(wrap(8))?;
        if let Some(first_line) = seen_iccid.insert(p.iccid.as_str().to_owned(), line) {
            return Err(Error::BatchDuplicateIccid { line, first_line });
        }
        if let Some(first_line) = seen_imsi.insert(imsi.as_str().to_owned(), line) {
            return Err(Error::BatchDuplicateImsi { line, first_line });
        }
        p.imsi = Some(imsi);
        out.push(p);
    }
    Ok(out)
}

fn syntax(e: &csv::Error, line: u64) -> Error {
    Error::BatchSyntax {
        line,
        reason: match e.kind() {
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => {
                format!("row has {len} field(s), the header has {expected_len}")
            }
            csv::ErrorKind::Utf8 { .. } => "invalid UTF-8".to_owned(),
            _ => e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "iccid,imsi,ki,opc,pin1,puk1\n\
        8949449999999990049,001010123456063,000102030405060708090a0b0c0d0e0f,00112233445566778899aabbccddeeff,1234,12345678\n\
        # a comment line\n\
        89000123456789012341,001-01-0000000001,0f0e0d0c0b0a09080706050403020100,ffeeddccbbaa99887766554433221100,,\n";

    #[test]
    fn parses_rows() {
        let rows = parse_batch(GOOD).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].iccid.as_str(), "8949449999999990049");
        assert_eq!(
            rows[0].pin1.as_ref().unwrap().as_bytes(),
            b"1234\xFF\xFF\xFF\xFF"
        );
        assert!(rows[0].pin2.is_none());
        assert_eq!(rows[1].imsi.as_ref().unwrap().mnc(), Some("01"));
        assert!(rows[1].pin1.is_none());
        assert_eq!(rows[1].k.as_ref().unwrap().as_bytes()[0], 0x0F);
    }

    #[test]
    fn header_errors() {
        assert_eq!(
            parse_batch("iccid,imsi,ki\n"),
            Err(Error::BatchMissingColumn { column: "opc" })
        );
        assert!(matches!(
            parse_batch("iccid,imsi,ki,opc,pin9\n"),
            Err(Error::BatchHeader { .. })
        ));
        assert!(matches!(
            parse_batch("iccid,imsi,ki,opc,iccid\n"),
            Err(Error::BatchHeader { .. })
        ));
        assert_eq!(
            parse_batch("").unwrap_err(),
            Error::BatchMissingColumn { column: "iccid" }
        );
    }

    #[test]
    fn row_errors_carry_line_numbers() {
        let bad_check = "iccid,imsi,ki,opc\n8949449999999990048,001010123456063,000102030405060708090a0b0c0d0e0f,00112233445566778899aabbccddeeff\n";
        match parse_batch(bad_check) {
            Err(Error::BatchValue {
                line: 2,
                column: "iccid",
                source,
            }) => {
                assert_eq!(
                    *source,
                    Error::IccidCheckDigit {
                        expected: 9,
                        found: 8
                    }
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        let short_key = "iccid,imsi,ki,opc\n8949449999999990049,001010123456063,0001,00112233445566778899aabbccddeeff\n";
        assert!(matches!(
            parse_batch(short_key),
            Err(Error::BatchValue {
                line: 2,
                column: "ki",
                ..
            })
        ));
        let missing = "iccid,imsi,ki,opc\n8949449999999990049,,0001,00\n";
        assert_eq!(
            parse_batch(missing),
            Err(Error::BatchEmptyValue {
                line: 2,
                column: "imsi"
            })
        );
        let ragged = "iccid,imsi,ki,opc\n1,2\n";
        assert!(matches!(
            parse_batch(ragged),
            Err(Error::BatchSyntax { line: 2, .. })
        ));
        let dup = format!(
            "{}8949449999999990049,001010123456064,000102030405060708090a0b0c0d0e0f,00112233445566778899aabbccddeeff,,\n",
            GOOD
        );
        assert_eq!(
            parse_batch(&dup),
            Err(Error::BatchDuplicateIccid {
                line: 5,
                first_line: 2
            })
        );
    }
}
