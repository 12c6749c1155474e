//! Consumer phones: an operator's SM-DP+ on a `MemStore` with one released
//! ES2+ order per phone, and the phone's LPA downloading its profile in
//! virtual time.
//!
//! [`Downloads::new`] imports the TS.48 test profile type, generates the
//! profiles and orders and releases one per consumer phone (ES2+
//! downloadOrder and confirmOrder through the SM-DP+'s own functions),
//! keeping each phone's activation code (its QR code). [`Downloads::run`]
//! is one phone's SGP.22 download: the LPA's [`Download`] state machine
//! drives the phone's virtual eUICC (APDUs) and the SM-DP+'s pure ES9+
//! steps (initiateAuthentication, authenticateClient,
//! getBoundProfilePackage, handleNotification) through [`InProcessEs9`];
//! each APDU and each ES9+ call advances virtual time by the scenario's
//! APDU time or by the data path's round trips plus the SM-DP+'s own time,
//! and the SM-DP+ sees that virtual time. Every signature, verification,
//! key agreement and the profile's personalisation and installation are
//! the real code's.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use ferrosim_asn1::json::es2::{ConfirmOrderRequest, DownloadOrderRequest, RequestHeader};
use ferrosim_asn1::rasn::types::FixedOctetString;
use ferrosim_asn1::rsp;
use ferrosim_euicc::VirtualEuicc;
use ferrosim_ids::{Iccid, Timestamp};
use ferrosim_lpa::download::{Action, Consent, Download, DownloadRequest};
use ferrosim_lpa::es9::inprocess::InProcessEs9;
use ferrosim_lpa::es9::{Es9ClientError, Es9Request};
use ferrosim_lpa::{ActivationCode, Es10, Es10Options, SmdpAddress, Transport};
use ferrosim_saip::Imsi;
use ferrosim_smdp::inventory::{self, ProfileRange, ProfileTypeImport};
use ferrosim_smdp::memstore::MemStore;
use ferrosim_smdp::metadata::{PolicyRules, ProfileClass};
use ferrosim_smdp::{Credential, Randomness, Smdp, SmdpConfig};
use ferrosim_telemetry::{Function, StatusCode, StepStatus};
use rand::rngs::StdRng;

use crate::error::SimError;
use crate::iot::Factory;

/// The GSMA TS.48 v2 test profile package (SAIP DER) every phone downloads
/// (from `testdata/upp/`, the sandbox's profile type).
const TS48_PACKAGE: &[u8] =
    include_bytes!("../../../testdata/upp/TS48V2-SAIP2-1-BERTLV-UNIQUE.der");
const OPERATOR: &str = "event-operator";
const PROFILE_TYPE: &str = "event-esim";

/// P-256 operations of one complete download on both sides, warm caches
/// (the SM-DP+ keeps the EUM it verified, the eUICCs the DPauth and DPpb
/// certificates): 6 signatures, 7 verifications, 2 one-time key pairs, 2
/// key agreements (see `ferrosim bench --in-memory`).
pub const EC_PER_DOWNLOAD: (u64, u64, u64, u64) = (6, 7, 2, 2);

/// The SM-DP+ of the consumer phones and their activation codes, and the
/// fleet's ES2+ counterpart for IoT devices provisioned during the run.
pub struct Downloads {
    smdp: Smdp<MemStore>,
    /// Activation code by device index (`None`: not a consumer phone).
    codes: Vec<Option<ActivationCode>>,
    /// The fleet's carriers as operators of this SM-DP+ (used between
    /// windows only, by the engine).
    fleet: std::sync::Mutex<FleetSide>,
}

/// Profiles generated per batch when a fleet profile type runs out.
const FLEET_BATCH: u64 = 1000;

/// The fleet's carriers at the SM-DP+: an operator each, their profile
/// types imported on first order and profiles generated in batches.
#[derive(Default)]
struct FleetSide {
    operators: std::collections::HashMap<String, ferrosim_smdp::store::Operator>,
    /// Per SM-DP+ profile type name: (its index, profiles generated, ordered).
    types: std::collections::HashMap<String, (u64, u64, u64)>,
}

impl std::fmt::Debug for Downloads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Downloads")
            .field("orders", &self.codes.iter().flatten().count())
            .finish_non_exhaustive()
    }
}

/// One ES9+ call as the phone saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Es9Step {
    /// The function.
    pub function: Function,
    /// Its outcome.
    pub status: StepStatus,
    /// Virtual time it took (ms).
    pub duration_ms: u32,
    /// Request bytes (JSON body).
    pub signalling_bytes: u32,
}

/// What one download did.
#[derive(Debug, Clone)]
pub struct Downloaded {
    /// When it ended (ms from the scenario's start).
    pub end_ms: i64,
    /// The ES9+ calls in order.
    pub steps: Vec<Es9Step>,
    /// The installed and enabled profile's ICCID, or why the download (or
    /// the enable after it) failed.
    pub outcome: Result<Iccid, String>,
}

fn setup<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> SimError {
    move |e| SimError::Setup(format!("{what}: {e}"))
}

impl Downloads {
    /// The SM-DP+ (the scenario PKI's DPauth and DPpb, randomness seeded
    /// from `seed`) with one released order for each device `consumer`
    /// marks, ordered at `now`.
    pub fn new(
        factory: &Factory,
        consumer: &[bool],
        seed: u64,
        now: Timestamp,
    ) -> Result<Self, SimError> {
        let pki = &factory.pki;
        let credential = |issued: &ferrosim_pki::Issued| -> Result<Credential, SimError> {
            Ok(Credential {
                certificate: issued.certificate.clone(),
                key: Arc::new(issued.signing_key().map_err(setup("SM-DP+ key"))?),
            })
        };
        let address = crate::iot::SMDP_ADDRESS.to_owned();
        let config = SmdpConfig::new(
            address.clone(),
            credential(&pki.dp_auth)?,
            credential(&pki.dp_pb)?,
            pki.trust_store().map_err(setup("SM-DP+ trust store"))?,
        )
        .map_err(setup("SM-DP+ configuration"))?;
        let mut seed_bytes = [0u8; 32];
        seed_bytes[..8].copy_from_slice(&seed.to_be_bytes());
        seed_bytes[8] = 0x44;
        let randomness = Randomness::seeded(seed_bytes);
        let store = MemStore::new();
        let count = consumer.iter().filter(|c| **c).count();
        let mut codes = vec![None; consumer.len()];
        if count == 0 {
            return Ok(Self {
                smdp: Smdp::with_randomness(config, store, randomness),
                codes,
                fleet: std::sync::Mutex::default(),
            });
        }
        let operator_id =
            ferrosim_smdp::ids::OperatorId::new(OPERATOR).map_err(setup("operator id"))?;
        futures::executor::block_on(async {
            let token = inventory::add_operator(
                &store,
                operator_id.clone(),
                "Event operator".into(),
                None,
                &mut randomness.for_call(),
            )
            .await
            .map_err(setup("operator"))?;
            inventory::import_profile_type(
                &store,
                ProfileTypeImport {
                    operator: operator_id.clone(),
                    name: PROFILE_TYPE.into(),
                    package: TS48_PACKAGE.to_vec(),
                    service_provider_name: Some("ferrosim event".into()),
                    profile_name: Some("Event eSIM".into()),
                    profile_class: ProfileClass::Operational,
                    policy_rules: PolicyRules::default(),
                    owner_mcc_mnc: None,
                    fallback_allowed: false,
                },
                now,
            )
            .await
            .map_err(setup("profile type"))?;
            inventory::generate_profiles(
                &store,
                &operator_id,
                PROFILE_TYPE,
                &ProfileRange {
                    count: count as u64,
                    first_iccid: Iccid::from_body("894400900000000001")
                        .map_err(setup("first ICCID"))?,
                    first_imsi: Imsi::with_mnc_len("001010000000001", 2)
                        .map_err(setup("first IMSI"))?,
                },
                &mut randomness.for_call(),
                now,
            )
            .await
            .map_err(setup("profiles"))?;
            let smdp = Smdp::with_randomness(config, store, randomness);
            let operator = smdp
                .authenticate_operator(&token)
                .await
                .map_err(setup("operator token"))?;
            let address = SmdpAddress::new(&address).map_err(setup("SM-DP+ address"))?;
            for (n, code) in codes.iter_mut().enumerate() {
                if !consumer[n] {
                    continue;
                }
                let header = RequestHeader {
                    function_requester_identifier: OPERATOR.into(),
                    function_call_identifier: format!("event-{n}"),
                };
                let ordered = smdp
                    .download_order(
                        &operator,
                        &DownloadOrderRequest {
                            header: header.clone(),
                            eid: None,
                            iccid: None,
                            profile_type: Some(PROFILE_TYPE.into()),
                        },
                        now,
                    )
                    .await
                    .map_err(setup("ES2+ downloadOrder"))?;
                let confirmed = smdp
                    .confirm_order(
                        &operator,
                        &ConfirmOrderRequest {
                            header,
                            iccid: ordered.iccid,
                            eid: None,
                            matching_id: None,
                            confirmation_code: None,
                            smds_address: None,
                            release_flag: true,
                        },
                        now,
                    )
                    .await
                    .map_err(setup("ES2+ confirmOrder"))?;
                *code = Some(
                    ActivationCode::new(address.clone(), Some(&confirmed.matching_id))
                        .map_err(setup("activation code"))?,
                );
            }
            Ok(Self {
                smdp,
                codes,
                fleet: std::sync::Mutex::default(),
            })
        })
    }

    /// ES2+ downloadOrder by the fleet for `carrier`'s profile type
    /// `profile_type` (the SM-DP+'s name for it), `call` being the
    /// functionCallIdentifier: the reserved profile's ICCID, or the
    /// SGP.22 status the SM-DP+ answered. The carrier's operator and the
    /// profile type (the TS.48 test profile) are set up on first use, and
    /// profiles generated in batches as orders use them up.
    pub fn fleet_order(
        &self,
        carrier: &str,
        profile_type: &str,
        call: &str,
        now: Timestamp,
    ) -> Result<Iccid, String> {
        let mut side = self
            .fleet
            .lock()
            .map_err(|_| "SM-DP+ state poisoned".to_owned())?;
        let store = self.smdp.store();
        let randomness = Randomness::seeded([0x46; 32]);
        futures::executor::block_on(async {
            let operator_id =
                ferrosim_smdp::ids::OperatorId::new(carrier).map_err(|e| e.to_string())?;
            if !side.operators.contains_key(carrier) {
                let token = inventory::add_operator(
                    store,
                    operator_id.clone(),
                    carrier.into(),
                    None,
                    &mut randomness.for_call(),
                )
                .await
                .map_err(|e| e.to_string())?;
                let operator = self
                    .smdp
                    .authenticate_operator(&token)
                    .await
                    .map_err(|e| e.to_string())?;
                side.operators.insert(carrier.to_owned(), operator);
            }
            let next_index = side.types.len() as u64;
            let (index, generated, ordered) = *side
                .types
                .entry(profile_type.to_owned())
                .or_insert((next_index, 0, 0));
            if generated == 0 {
                inventory::import_profile_type(
                    store,
                    ProfileTypeImport {
                        operator: operator_id.clone(),
                        name: profile_type.into(),
                        package: TS48_PACKAGE.to_vec(),
                        service_provider_name: Some(carrier.into()),
                        profile_name: Some(profile_type.into()),
                        profile_class: ProfileClass::Operational,
                        policy_rules: PolicyRules::default(),
                        owner_mcc_mnc: None,
                        fallback_allowed: false,
                    },
                    now,
                )
                .await
                .map_err(|e| e.to_string())?;
            }
            let mut generated_now = generated;
            if ordered >= generated {
                // ICCIDs 894401 <type: 2 digits> <10 digits>, IMSIs 00102
                // <type: 2 digits> <8 digits>: apart from the phones'.
                let first = (index % 100) * 10_000_000_000 + generated + 1;
                inventory::generate_profiles(
                    store,
                    &operator_id,
                    profile_type,
                    &ProfileRange {
                        count: FLEET_BATCH,
                        first_iccid: Iccid::from_body(&format!("894401{first:012}"))
                            .map_err(|e| e.to_string())?,
                        first_imsi: Imsi::with_mnc_len(
                            &format!("00102{:02}{:08}", index % 100, generated + 1),
                            2,
                        )
                        .map_err(|e| e.to_string())?,
                    },
                    &mut randomness.for_call(),
                    now,
                )
                .await
                .map_err(|e| e.to_string())?;
                generated_now += FLEET_BATCH;
            }
            side.types
                .insert(profile_type.to_owned(), (index, generated_now, ordered + 1));
            let operator = side
                .operators
                .get(carrier)
                .ok_or_else(|| "no operator".to_owned())?;
            let reserved = self
                .smdp
                .download_order(
                    operator,
                    &DownloadOrderRequest {
                        header: RequestHeader {
                            function_requester_identifier: carrier.into(),
                            function_call_identifier: call.into(),
                        },
                        eid: None,
                        iccid: None,
                        profile_type: Some(profile_type.into()),
                    },
                    now,
                )
                .await
                .map_err(|e| {
                    let c = e.status();
                    format!("{}/{}", c.subject, c.reason)
                })?;
            Iccid::new(&reserved.iccid).map_err(|e| e.to_string())
        })
    }

    /// ES2+ confirmOrder (released) by the fleet for `carrier`: the order's
    /// matching id, or the SGP.22 status the SM-DP+ answered.
    pub fn fleet_confirm(
        &self,
        carrier: &str,
        iccid: &Iccid,
        call: &str,
        now: Timestamp,
    ) -> Result<String, String> {
        let side = self
            .fleet
            .lock()
            .map_err(|_| "SM-DP+ state poisoned".to_owned())?;
        let operator = side
            .operators
            .get(carrier)
            .ok_or_else(|| "8.1.1/3.8".to_owned())?;
        let confirmed = futures::executor::block_on(self.smdp.confirm_order(
            operator,
            &ConfirmOrderRequest {
                header: RequestHeader {
                    function_requester_identifier: carrier.into(),
                    function_call_identifier: call.into(),
                },
                iccid: iccid.as_str().into(),
                eid: None,
                matching_id: None,
                confirmation_code: None,
                smds_address: None,
                release_flag: true,
            },
            now,
        ))
        .map_err(|e| {
            let c = e.status();
            format!("{}/{}", c.subject, c.reason)
        })?;
        Ok(confirmed.matching_id)
    }

    /// The activation code of a matching id at this SM-DP+.
    pub fn code_for(&self, matching_id: &str) -> Result<ActivationCode, String> {
        let address = SmdpAddress::new(crate::iot::SMDP_ADDRESS).map_err(|e| e.to_string())?;
        ActivationCode::new(address, Some(matching_id)).map_err(|e| e.to_string())
    }

    /// Device `n`'s activation code, if it is a consumer phone.
    pub fn code(&self, n: u32) -> Option<&ActivationCode> {
        self.codes.get(n as usize).and_then(Option::as_ref)
    }

    /// One phone's download, from `start_ms` (virtual, from the scenario's
    /// epoch `t0`): `round_trip_ms` gives the data path's round trip at a
    /// moment, `card_rng` drives the eUICC's randomness.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        card: &mut VirtualEuicc,
        code: &ActivationCode,
        t0: i64,
        start_ms: i64,
        apdu_ms: i64,
        server_ms: i64,
        round_trip_ms: &mut dyn FnMut(i64) -> i64,
        card_rng: &mut StdRng,
        enable: bool,
    ) -> Result<Downloaded, SimError> {
        let clock = Arc::new(AtomicI64::new(t0 + start_ms));
        let seen = Arc::clone(&clock);
        let es9 = InProcessEs9::with_clock(
            self.smdp.clone(),
            Arc::new(move || Timestamp(seen.load(Ordering::Relaxed))),
        );
        let mut t = start_ms;
        let card_clock = Arc::clone(&clock);
        let transport = |apdu: &[u8]| {
            let now = Timestamp(card_clock.load(Ordering::Relaxed)).to_system_time();
            card.handle_apdu_with_rng(apdu, now, card_rng)
        };
        let mut es10 = Es10::open(transport, &Es10Options::default())
            .map_err(|e| SimError::Device(format!("opening the ISD-R: {e}")))?;
        let request = DownloadRequest::new(code, None);
        let mut machine = Download::new(&request, es10.link(), Timestamp(t0 + t));
        let mut steps = Vec::with_capacity(4);
        let mut turns = 0u32;
        let outcome = loop {
            turns += 1;
            if turns > 10_000 {
                break Err("the download did not end".to_owned());
            }
            let Some(action) = machine.poll() else {
                break Err("the download stalled".to_owned());
            };
            match action {
                Action::Transmit(apdu) => {
                    t += apdu_ms;
                    clock.store(t0 + t, Ordering::Relaxed);
                    let response = es10.transport_mut().transmit(&apdu);
                    machine.handle_apdu_response(response, Timestamp(t0 + t));
                }
                Action::Es9(call) => {
                    let (function, bytes) = describe(&call.request);
                    let took = 2 * round_trip_ms(t) + server_ms;
                    clock.store(t0 + t, Ordering::Relaxed);
                    let response =
                        futures::executor::block_on(call.request.send(&es9, &call.address));
                    t += took;
                    steps.push(Es9Step {
                        function,
                        status: status(response.error()),
                        duration_ms: u32::try_from(took).unwrap_or(u32::MAX),
                        signalling_bytes: bytes,
                    });
                    machine.handle_es9_response(call.id, response, Timestamp(t0 + t));
                }
                Action::Confirm(_) => machine.handle_consent(Consent::Accept, Timestamp(t0 + t)),
                Action::ConfirmationCode(_) => {
                    machine.handle_confirmation_code(None, Timestamp(t0 + t));
                }
                Action::WaitUntil(w) => {
                    t = t.max(w.0 - t0);
                    machine.handle_timeout(Timestamp(t0 + t));
                }
                Action::Done(result) => {
                    break match *result {
                        Ok(done) => Ok(done.iccid),
                        Err(e) => Err(format!("{}: {}", e.step, e.failure)),
                    };
                }
            }
        };
        if !enable {
            // An IPA's download: the eIM enables the profile later. Free
            // the logical channel.
            let _ = es10.close();
            return Ok(Downloaded {
                end_ms: t,
                steps,
                outcome,
            });
        }
        // The user enables the new profile in the LPA (ES10c.EnableProfile).
        let outcome = outcome.and_then(|iccid| {
            let enable = ferrosim_asn1::encode_der(&rsp::EnableProfileRequest::new(
                rsp::EnableProfileRequestProfileIdentifier::iccid(rsp::Iccid(
                    FixedOctetString::new(iccid.to_bcd()),
                )),
                false,
            ))
            .map_err(|e| e.to_string())?;
            t += apdu_ms;
            clock.store(t0 + t, Ordering::Relaxed);
            let answer = es10
                .transmit_es10(&enable)
                .map_err(|e| format!("EnableProfile: {e}"))?;
            match crate::iot::apdu::result_code(&answer) {
                0 => Ok(iccid),
                code => Err(format!("EnableProfile: result {code}")),
            }
        });
        Ok(Downloaded {
            end_ms: t,
            steps,
            outcome,
        })
    }
}

/// The telemetry function of a call and its request's JSON size.
fn describe(request: &Es9Request) -> (Function, u32) {
    let json = |v: Result<Vec<u8>, serde_json::Error>| v.map_or(0, |b| b.len() as u32);
    match request {
        Es9Request::InitiateAuthentication(r) => (
            Function::Es9InitiateAuthentication,
            json(serde_json::to_vec(r)),
        ),
        Es9Request::AuthenticateClient(r) => {
            (Function::Es9AuthenticateClient, json(serde_json::to_vec(r)))
        }
        Es9Request::GetBoundProfilePackage(r) => (
            Function::Es9GetBoundProfilePackage,
            json(serde_json::to_vec(r)),
        ),
        Es9Request::HandleNotification(r) => {
            (Function::Es9HandleNotification, json(serde_json::to_vec(r)))
        }
        Es9Request::CancelSession(r) => (Function::Es9CancelSession, json(serde_json::to_vec(r))),
    }
}

fn status(error: Option<&Es9ClientError>) -> StepStatus {
    match error {
        None => StepStatus::Ok,
        Some(Es9ClientError::Failed {
            subject_code,
            reason_code,
            ..
        }) => format!("{subject_code}/{reason_code}")
            .parse::<StatusCode>()
            .map_or(StepStatus::Unreachable, StepStatus::Failed),
        Some(_) => StepStatus::Unreachable,
    }
}
