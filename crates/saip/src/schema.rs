//! Schema validation with the types generated from `PEDefinitions`
//! (`ferrosim_asn1::pe`): every element decoded as a `ProfileElement`.
//!
//! Parsing ([`ProfilePackage::parse`]) checks the TLV structure and the
//! fields this crate reads; this adds the full ASN.1 check (mandatory
//! fields, sizes, CHOICE alternatives) for import, and gives typed values to
//! callers that want them. The typed values are for reading only: packages
//! are handed on as their original bytes.

use ferrosim_asn1::pe;

use crate::error::Error;
use crate::package::ProfilePackage;

impl ProfilePackage {
    /// Decodes every element with the generated `PEDefinitions` types.
    pub fn decode_elements(&self) -> Result<Vec<pe::ProfileElement>, Error> {
        self.elements()
            .enumerate()
            .map(|(index, e)| {
                ferrosim_asn1::decode_der::<pe::ProfileElement>(e.raw).map_err(|err| {
                    Error::Schema {
                        index,
                        kind: e.kind,
                        reason: err.to_string(),
                    }
                })
            })
            .collect()
    }

    /// Checks every element against the `PEDefinitions` schema.
    pub fn validate_schema(&self) -> Result<(), Error> {
        self.decode_elements().map(|_| ())
    }
}
