//! Local profile management (SGP.22 5.7.15-5.7.21): listing, enabling,
//! disabling, deleting, nicknames and memory reset.
//!
//! At most one profile is enabled; enabling another disables the current
//! one. The profile policy rules apply: PPR1 forbids disabling (and so
//! enabling another profile over it), PPR2 forbids deleting. Each change
//! signs a notification when the profile's metadata asks for one.

use ferrosim_asn1::rasn::types::Integer;
use ferrosim_asn1::rsp;
use ferrosim_asn1::tlv::Tlv;

use super::{Es10Reply, Isdr, decode};
use crate::codes::ProfileResult;
use crate::profile::{NotificationOperation, ProfileClass, ProfileState, profile_info};

/// A profile named by ISD-P AID or ICCID (the CHOICE of the requests).
pub(super) enum ProfileId<'a> {
    Aid(&'a [u8]),
    Iccid(&'a [u8; 10]),
}

impl Isdr {
    /// ES10c.GetProfilesInfo: the profiles matching the search criteria,
    /// with the data objects of the tag list (all when there is none).
    pub(super) fn get_profiles_info(&self, cmd: &Tlv<'_>) -> Es10Reply {
        let request: rsp::ProfileInfoListRequest = match decode(cmd) {
            Ok(r) => r,
            Err(e) => return e,
        };
        let tags = match request.tag_list.as_deref().map(parse_tag_list) {
            Some(None) => {
                return Es10Reply::encode(&rsp::ProfileInfoListResponse::profileInfoListError(
                    rsp::ProfileInfoListError(Integer::from(1)),
                ));
            }
            Some(Some(tags)) => Some(tags),
            None => None,
        };
        use rsp::ProfileInfoListRequestSearchCriteria as Criteria;
        let infos = self
            .state
            .profiles
            .iter()
            .filter(|p| match &request.search_criteria {
                None => true,
                Some(Criteria::isdpAid(aid)) => p.isdp_aid.as_slice() == aid.0.as_ref(),
                Some(Criteria::iccid(iccid)) => p.iccid_bytes() == *iccid.0,
                Some(Criteria::profileClass(class)) => {
                    i64::try_from(&class.0).ok() == Some(p.profile_class.code())
                }
                Some(_) => false,
            })
            .map(|p| profile_info(p, |tag| tags.as_ref().is_none_or(|t| t.contains(&tag))))
            .collect();
        Es10Reply::encode(&rsp::ProfileInfoListResponse::profileInfoListOk(infos))
    }

    /// ES10c.EnableProfile.
    pub(super) fn enable_profile(&mut self, cmd: &Tlv<'_>) -> Es10Reply {
        let request: rsp::EnableProfileRequest = match decode(cmd) {
            Ok(r) => r,
            Err(e) => return e,
        };
        use rsp::EnableProfileRequestProfileIdentifier as Id;
        let id = match &request.profile_identifier {
            Id::isdpAid(aid) => ProfileId::Aid(aid.0.as_ref()),
            Id::iccid(iccid) => ProfileId::Iccid(&iccid.0),
            _ => return enable_result(ProfileResult::UndefinedError),
        };
        enable_result(self.enable(&id))
    }

    pub(super) fn enable(&mut self, id: &ProfileId<'_>) -> ProfileResult {
        let Some(target) = self.find(id) else {
            return ProfileResult::NotFound;
        };
        if self.state.profiles[target].state == ProfileState::Enabled {
            return ProfileResult::WrongState;
        }
        let current = self
            .state
            .profiles
            .iter()
            .position(|p| p.state == ProfileState::Enabled);
        if let Some(current) = current {
            if self.state.profiles[current]
                .policy_rules
                .disable_not_allowed
            {
                return ProfileResult::DisallowedByPolicy;
            }
            self.set_state(current, ProfileState::Disabled);
        }
        self.set_state(target, ProfileState::Enabled);
        ProfileResult::Ok
    }

    /// ES10c.DisableProfile.
    pub(super) fn disable_profile(&mut self, cmd: &Tlv<'_>) -> Es10Reply {
        let request: rsp::DisableProfileRequest = match decode(cmd) {
            Ok(r) => r,
            Err(e) => return e,
        };
        use rsp::DisableProfileRequestProfileIdentifier as Id;
        let id = match &request.profile_identifier {
            Id::isdpAid(aid) => ProfileId::Aid(aid.0.as_ref()),
            Id::iccid(iccid) => ProfileId::Iccid(&iccid.0),
            _ => return disable_result(ProfileResult::UndefinedError),
        };
        let result = self.disable(&id);
        disable_result(result)
    }

    /// ES10c.DeleteProfile: only a disabled profile without PPR2.
    pub(super) fn delete_profile(&mut self, cmd: &Tlv<'_>) -> Es10Reply {
        let request: rsp::DeleteProfileRequest = match decode(cmd) {
            Ok(r) => r,
            Err(e) => return e,
        };
        let id = match &request {
            rsp::DeleteProfileRequest::isdpAid(aid) => ProfileId::Aid(aid.0.as_ref()),
            rsp::DeleteProfileRequest::iccid(iccid) => ProfileId::Iccid(&iccid.0),
            _ => return delete_result(ProfileResult::UndefinedError),
        };
        let result = self.delete(&id);
        delete_result(result)
    }

    /// Disables profile `id` (ES10c DisableProfile, SGP.32 PSMO disable).
    pub(super) fn disable(&mut self, id: &ProfileId<'_>) -> ProfileResult {
        match self.find(id) {
            None => ProfileResult::NotFound,
            Some(i) if self.state.profiles[i].state != ProfileState::Enabled => {
                ProfileResult::WrongState
            }
            Some(i) if self.state.profiles[i].policy_rules.disable_not_allowed => {
                ProfileResult::DisallowedByPolicy
            }
            Some(i) => {
                self.set_state(i, ProfileState::Disabled);
                ProfileResult::Ok
            }
        }
    }

    /// Deletes profile `id` when disabled and allowed (ES10c DeleteProfile,
    /// SGP.32 PSMO delete).
    pub(super) fn delete(&mut self, id: &ProfileId<'_>) -> ProfileResult {
        match self.find(id) {
            None => ProfileResult::NotFound,
            Some(i) if self.state.profiles[i].state != ProfileState::Disabled => {
                ProfileResult::WrongState
            }
            Some(i) if self.state.profiles[i].policy_rules.delete_not_allowed => {
                ProfileResult::DisallowedByPolicy
            }
            Some(i) => {
                let removed = self.state.profiles.remove(i);
                self.profile_switched(Some(&removed.iccid));
                self.changed();
                tracing::info!(iccid = %removed.iccid, "profile deleted");
                let address = removed.notification_address(NotificationOperation::Delete);
                self.notify(NotificationOperation::Delete, &removed.iccid, address);
                ProfileResult::Ok
            }
        }
    }

    /// ES10c.SetNickname.
    pub(super) fn set_nickname(&mut self, cmd: &Tlv<'_>) -> Es10Reply {
        let request: rsp::SetNicknameRequest = match decode(cmd) {
            Ok(r) => r,
            Err(e) => return e,
        };
        let result = match self.find(&ProfileId::Iccid(&request.iccid.0)) {
            None => ProfileResult::NotFound,
            Some(_) if request.profile_nickname.chars().count() > 64 => {
                ProfileResult::UndefinedError
            }
            Some(i) => {
                let nickname = request.profile_nickname.clone();
                self.state.profiles[i].nickname = (!nickname.is_empty()).then_some(nickname);
                self.changed();
                ProfileResult::Ok
            }
        };
        Es10Reply::encode(&rsp::SetNicknameResponse::new(Integer::from(result.code())))
    }

    /// ES10c.eUICCMemoryReset: deletes operational and/or test profiles
    /// (whatever their state and policy rules) and/or forgets the default
    /// SM-DP+ address. No notification is generated for what it deletes.
    pub(super) fn memory_reset(&mut self, cmd: &Tlv<'_>) -> Es10Reply {
        let request: rsp::EuiccMemoryResetRequest = match decode(cmd) {
            Ok(r) => r,
            Err(e) => return e,
        };
        let option = |i: usize| request.reset_options.get(i).is_some_and(|b| *b);
        let result = self.reset_memory(option(0), option(1), false, option(2));
        Es10Reply::encode(&rsp::EuiccMemoryResetResponse::new(Integer::from(
            result.code(),
        )))
    }

    /// Deletes the profiles of the classes named and forgets the default
    /// SM-DP+ address if asked: `Ok`, or `NotFound` when nothing was there.
    pub(super) fn reset_memory(
        &mut self,
        operational: bool,
        test: bool,
        provisioning: bool,
        address: bool,
    ) -> ProfileResult {
        let before = self.state.profiles.len();
        self.state.profiles.retain(|p| match p.profile_class {
            ProfileClass::Operational => !operational,
            ProfileClass::Test => !test,
            ProfileClass::Provisioning => !provisioning,
        });
        let mut done = self.state.profiles.len() < before;
        if done {
            self.reset_switching_profiles();
        }
        if address && self.state.default_smdp_address.take().is_some() {
            done = true;
        }
        let result = if done {
            self.changed();
            ProfileResult::Ok
        } else {
            ProfileResult::NotFound
        };
        tracing::info!(
            operational,
            test,
            provisioning,
            address,
            ?result,
            "eUICC memory reset"
        );
        result
    }

    fn find(&self, id: &ProfileId<'_>) -> Option<usize> {
        self.state.profiles.iter().position(|p| match id {
            ProfileId::Aid(aid) => p.isdp_aid.as_slice() == *aid,
            ProfileId::Iccid(iccid) => &p.iccid_bytes() == *iccid,
        })
    }

    /// Moves profile `i` to `state` and signs the matching notification.
    fn set_state(&mut self, i: usize, state: ProfileState) {
        let op = match state {
            ProfileState::Enabled => NotificationOperation::Enable,
            ProfileState::Disabled => NotificationOperation::Disable,
        };
        let profile = &mut self.state.profiles[i];
        profile.state = state;
        let iccid = profile.iccid.clone();
        let address = profile.notification_address(op);
        tracing::info!(%iccid, ?state, "profile state changed");
        self.profile_switched(None);
        self.changed();
        self.notify(op, &iccid, address);
    }
}

/// The tags of a `tagList` (BER tags of one to three bytes, concatenated).
fn parse_tag_list(list: &[u8]) -> Option<Vec<u32>> {
    let mut tags = Vec::new();
    let mut rest = list;
    while !rest.is_empty() {
        let (tag, len) = ferrosim_asn1::tlv::read_tag(rest).ok()?;
        tags.push(tag);
        rest = &rest[len..];
    }
    Some(tags)
}

fn enable_result(r: ProfileResult) -> Es10Reply {
    Es10Reply::encode(&rsp::EnableProfileResponse::new(Integer::from(r.code())))
}

fn disable_result(r: ProfileResult) -> Es10Reply {
    Es10Reply::encode(&rsp::DisableProfileResponse::new(Integer::from(r.code())))
}

fn delete_result(r: ProfileResult) -> Es10Reply {
    Es10Reply::encode(&rsp::DeleteProfileResponse::new(Integer::from(r.code())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_lists() {
        assert_eq!(
            parse_tag_list(&[0x5A, 0x4F, 0x9F, 0x70, 0x90, 0xBF, 0x22]),
            Some(vec![0x5A, 0x4F, 0x9F70, 0x90, 0xBF22])
        );
        assert_eq!(parse_tag_list(&[]), Some(vec![]));
        assert_eq!(parse_tag_list(&[0x9F]), None);
        assert_eq!(parse_tag_list(&[0x9F, 0x81, 0x81, 0x81, 0x01]), None);
    }
}
