//! Indirect profile download on the ASN.1 binding: the ES9+ steps of the
//! LPA's download and notification machines carried as ESipa messages to
//! the eIM, which relays them to the SM-DP+ (SGP.32 ESipa
//! `InitiateAuthenticationRequestEsipa` `BF39`, `AuthenticateClient…` `BF3B`,
//! `GetBoundProfilePackage…` `BF3A`, `CancelSession…` `BF41`,
//! `HandleNotificationEsipa` `BF3D`), and the eIM's answers read back into
//! ES9+ answers.
//!
//! The eUICC's and the SM-DP+'s signed values are moved as bytes, never
//! decoded and re-encoded. (On the JSON binding the ESipa members of these
//! functions are the ES9+ members, so the ES9+ JSON goes as it is to
//! `/gsma/rsp2/esipa/<function>`; see the driver.)

use ferrosim_asn1::json::es9::{
    AuthenticateClientResponse, CancelSessionResponse, GetBoundProfilePackageResponse,
    InitiateAuthenticationResponse,
};
use ferrosim_asn1::json::{Base64, ResponseHeader};
use ferrosim_asn1::tlv::{Tlv, tlv};
use ferrosim_ids::TransactionId;
use ferrosim_lpa::es9::{Es9ClientError, Es9Request, Es9Response, function};

/// The ESipa DER message carrying the ES9+ request `request`.
pub fn request_to_der(request: &Es9Request) -> Result<Vec<u8>, Es9ClientError> {
    let name = request.name();
    let bad = |reason: String| Es9ClientError::BadResponse {
        function: name,
        reason: format!("cannot build the ESipa request: {reason}"),
    };
    let element = |b: &Base64| -> Result<Vec<u8>, Es9ClientError> {
        Tlv::parse_exact(&b.0)
            .map(|t| t.raw.to_vec())
            .map_err(|e| bad(e.to_string()))
    };
    let tid = |t: &TransactionId| tlv(0x80, t.as_bytes());
    Ok(match request {
        Es9Request::InitiateAuthentication(r) => {
            let mut v = tlv(0x81, &r.euicc_challenge.0);
            v.extend(tlv(0x83, r.smdp_address.as_bytes()));
            v.extend(element(&r.euicc_info1)?);
            tlv(0xBF39, &v)
        }
        Es9Request::AuthenticateClient(r) => {
            let mut v = tid(&r.transaction_id);
            v.extend(element(&r.authenticate_server_response)?);
            tlv(0xBF3B, &v)
        }
        Es9Request::GetBoundProfilePackage(r) => {
            let mut v = tid(&r.transaction_id);
            v.extend(element(&r.prepare_download_response)?);
            tlv(0xBF3A, &v)
        }
        Es9Request::CancelSession(r) => {
            // cancelSessionResponse is the second component: [1], its
            // content as the eUICC signed it.
            let mut v = tid(&r.transaction_id);
            let answer =
                Tlv::parse_exact(&r.cancel_session_response.0).map_err(|e| bad(e.to_string()))?;
            v.extend(tlv(0xA1, answer.value));
            tlv(0xBF41, &v)
        }
        Es9Request::HandleNotification(r) => {
            tlv(0xBF3D, &tlv(0xA0, &element(&r.pending_notification)?))
        }
    })
}

/// The ES9+ answer to `request` from the eIM's ASN.1-binding answer
/// (`status`, `body`).
pub fn response_from_der(request: &Es9Request, status: u16, body: &[u8]) -> Es9Response {
    let name = request.name();
    match read(name, status, body) {
        Ok(response) => response,
        Err(e) => request.failed(e),
    }
}

fn read(name: &'static str, status: u16, body: &[u8]) -> Result<Es9Response, Es9ClientError> {
    let bad = |reason: String| Es9ClientError::BadResponse {
        function: name,
        reason,
    };
    if name == function::HANDLE_NOTIFICATION {
        // No content: the eIM took the notification.
        return if body.is_empty() && (status == 204 || status == 200) {
            Ok(Es9Response::HandleNotification(Ok(())))
        } else {
            Err(bad(format!("HTTP {status} with {} bytes", body.len())))
        };
    }
    let outer = Tlv::parse_exact(body).map_err(|e| bad(e.to_string()))?;
    let (tag, error_tag) = match name {
        function::INITIATE_AUTHENTICATION => (0xBF39, 0x81),
        function::AUTHENTICATE_CLIENT => (0xBF3B, 0x82),
        function::GET_BOUND_PROFILE_PACKAGE => (0xBF3A, 0x81),
        _ => (0xBF41, 0x81),
    };
    if outer.tag != tag {
        return Err(bad(format!("answer {:X} to {tag:X}", outer.tag)));
    }
    let inner = Tlv::parse_exact(outer.value).map_err(|e| bad(e.to_string()))?;
    if inner.tag == error_tag {
        let code = inner.value.iter().fold(0i64, |n, b| {
            n.saturating_mul(256).saturating_add(i64::from(*b))
        });
        return Err(Es9ClientError::Failed {
            function: name,
            subject_code: "ESipa".into(),
            reason_code: code.to_string(),
            message: Some(format!("the eIM answered {name} with error code {code}")),
        });
    }
    if inner.tag != 0xA0 {
        return Err(bad(format!("alternative {:X} is not supported", inner.tag)));
    }
    let children: Vec<Tlv<'_>> = inner
        .children()
        .collect::<Result<_, _>>()
        .map_err(|e| bad(e.to_string()))?;
    let tid_of = |t: &Tlv<'_>| TransactionId::from_bytes(t.value).map_err(|e| bad(e.to_string()));
    let raw = |t: &Tlv<'_>| Base64(t.raw.to_vec());
    let find = |tag: u32, nth: usize| children.iter().filter(|t| t.tag == tag).nth(nth);
    let need =
        |tag: u32, nth: usize, what: &str| find(tag, nth).ok_or_else(|| bad(format!("no {what}")));
    let header = ResponseHeader::success();
    Ok(match name {
        function::INITIATE_AUTHENTICATION => {
            let signed1 = need(0x30, 0, "serverSigned1")?;
            // transactionId [0], or the one inside serverSigned1.
            let transaction_id = match find(0x80, 0) {
                Some(t) => tid_of(t)?,
                None => signed1
                    .children()
                    .find_map(|c| c.ok().filter(|c| c.tag == 0x80))
                    .map(|t| tid_of(&t))
                    .ok_or_else(|| bad("no transactionId".into()))??,
            };
            Es9Response::InitiateAuthentication(Ok(InitiateAuthenticationResponse {
                header,
                transaction_id,
                server_signed1: raw(signed1),
                server_signature1: raw(need(0x5F37, 0, "serverSignature1")?),
                euicc_ci_pkid_to_be_used: raw(need(0x04, 0, "euiccCiPKIdentifierToBeUsed")?),
                server_certificate: raw(need(0x30, 1, "serverCertificate")?),
            }))
        }
        function::AUTHENTICATE_CLIENT => {
            let signed2 = need(0x30, 0, "smdpSigned2")?;
            let transaction_id = match find(0x80, 0) {
                Some(t) => tid_of(t)?,
                None => signed2
                    .children()
                    .find_map(|c| c.ok().filter(|c| c.tag == 0x80))
                    .map(|t| tid_of(&t))
                    .ok_or_else(|| bad("no transactionId".into()))??,
            };
            Es9Response::AuthenticateClient(Ok(AuthenticateClientResponse {
                header,
                transaction_id,
                profile_metadata: raw(need(0xBF25, 0, "profileMetaData")?),
                smdp_signed2: raw(signed2),
                smdp_signature2: raw(need(0x5F37, 0, "smdpSignature2")?),
                smdp_certificate: raw(need(0x30, 1, "smdpCertificate")?),
            }))
        }
        function::GET_BOUND_PROFILE_PACKAGE => {
            let bpp = need(0xBF36, 0, "boundProfilePackage")?;
            let transaction_id = match find(0x80, 0) {
                Some(t) => tid_of(t)?,
                None => bpp
                    .find(0xBF23)
                    .ok()
                    .flatten()
                    .and_then(|init| init.find(0x80).ok().flatten())
                    .map(|t| tid_of(&t))
                    .ok_or_else(|| bad("no transactionId".into()))??,
            };
            Es9Response::GetBoundProfilePackage(Ok(GetBoundProfilePackageResponse {
                header,
                transaction_id,
                bound_profile_package: raw(bpp),
            }))
        }
        _ => Es9Response::CancelSession(Ok(CancelSessionResponse {
            header,
            transaction_id: None,
        })),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ferrosim_asn1::json::es9::{
        AuthenticateClientRequest, HandleNotificationRequest, InitiateAuthenticationRequest,
    };

    #[test]
    fn requests_carry_the_euicc_answers_as_received() {
        let info1 = tlv(0xBF20, &tlv(0x82, &[2, 3, 0]));
        let der = request_to_der(&Es9Request::InitiateAuthentication(
            InitiateAuthenticationRequest {
                euicc_challenge: Base64(vec![7; 16]),
                euicc_info1: Base64(info1.clone()),
                smdp_address: "smdp.example".into(),
            },
        ))
        .unwrap();
        let top = Tlv::parse_tagged(&der, 0xBF39).unwrap();
        assert_eq!(top.require(0x81).unwrap().value, [7; 16]);
        assert_eq!(top.require(0x83).unwrap().value, b"smdp.example");
        assert_eq!(top.require(0xBF20).unwrap().raw, info1.as_slice());
        let der = request_to_der(&Es9Request::HandleNotification(HandleNotificationRequest {
            pending_notification: Base64(tlv(0xBF37, &[1, 2])),
        }))
        .unwrap();
        assert_eq!(der, tlv(0xBF3D, &tlv(0xA0, &tlv(0xBF37, &[1, 2]))));
        // Garbage in the eUICC's answer is refused, not sent.
        assert!(
            request_to_der(&Es9Request::AuthenticateClient(AuthenticateClientRequest {
                transaction_id: "01".parse().unwrap(),
                authenticate_server_response: Base64(vec![0xBF]),
            }))
            .is_err()
        );
        // A transaction id that is not hex cannot even be put in a request.
        assert!("zz".parse::<TransactionId>().is_err());
    }

    #[test]
    fn answers_and_errors_read_back() {
        let request = Es9Request::GetBoundProfilePackage(
            ferrosim_asn1::json::es9::GetBoundProfilePackageRequest {
                transaction_id: "0102".parse().unwrap(),
                prepare_download_response: Base64(tlv(0xBF21, &[])),
            },
        );
        let bpp = tlv(0xBF36, &tlv(0xBF23, &tlv(0x80, &[1, 2])));
        let ok = tlv(0xBF3A, &tlv(0xA0, &bpp));
        match response_from_der(&request, 200, &ok) {
            Es9Response::GetBoundProfilePackage(Ok(r)) => {
                assert_eq!(r.transaction_id.to_hex(), "0102");
                assert_eq!(r.bound_profile_package.0, bpp);
            }
            other => panic!("{other:?}"),
        }
        let error = tlv(0xBF3A, &tlv(0x81, &[95]));
        match response_from_der(&request, 200, &error) {
            Es9Response::GetBoundProfilePackage(Err(Es9ClientError::Failed {
                reason_code,
                ..
            })) => assert_eq!(reason_code, "95"),
            other => panic!("{other:?}"),
        }
        // A transaction id of 17 bytes is not one.
        let long = tlv(0xBF36, &tlv(0xBF23, &tlv(0x80, &[1; 17])));
        let long = tlv(0xBF3A, &tlv(0xA0, &long));
        for garbage in [
            &long[..],
            &b""[..],
            b"\x30\x00",
            b"\xBF\x3A",
            b"\xBF\x3A\x02\xA0\x00",
            b"\xBF\x3A\x02\xA3\x00",
            b"not der",
        ] {
            assert!(
                response_from_der(&request, 200, garbage).error().is_some(),
                "{garbage:?}"
            );
        }
    }
}
