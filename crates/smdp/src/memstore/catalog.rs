//! Operators and profile types in memory.

use std::collections::HashMap;
use std::sync::PoisonError;

use super::MemStore;
use crate::ids::OperatorId;
use crate::store::{CatalogStore, Operator, ProfileTypeRecord, StoreError, StoreResult};

#[derive(Default)]
pub(super) struct Catalog {
    operators: HashMap<OperatorId, Operator>,
    by_token: HashMap<[u8; 32], OperatorId>,
    /// Every version of each type, version `n` at index `n - 1`.
    types: HashMap<OperatorId, HashMap<String, Vec<ProfileTypeRecord>>>,
}

impl Catalog {
    /// Whether the operator has a profile type of this name.
    pub(super) fn has_type(&self, operator: &OperatorId, name: &str) -> bool {
        self.types
            .get(operator)
            .is_some_and(|types| types.contains_key(name))
    }
}

impl MemStore {
    fn catalog_read(&self) -> std::sync::RwLockReadGuard<'_, Catalog> {
        self.inner
            .catalog
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn with_catalog<T>(&self, f: impl FnOnce(&Catalog) -> T) -> T {
        f(&self.catalog_read())
    }
}

impl CatalogStore for MemStore {
    async fn put_operator(&self, operator: &Operator) -> StoreResult<()> {
        let mut c = self
            .inner
            .catalog
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(holder) = c.by_token.get(&operator.token_hash)
            && *holder != operator.id
        {
            return Err(StoreError::Conflict(
                "another operator has the same token".into(),
            ));
        }
        if let Some(old) = c.operators.get(&operator.id) {
            let old_hash = old.token_hash;
            c.by_token.remove(&old_hash);
        }
        c.by_token.insert(operator.token_hash, operator.id.clone());
        c.operators.insert(operator.id.clone(), operator.clone());
        Ok(())
    }

    async fn operator_by_token(&self, token_hash: &[u8; 32]) -> StoreResult<Option<Operator>> {
        let c = self.catalog_read();
        Ok(c.by_token
            .get(token_hash)
            .and_then(|id| c.operators.get(id))
            .cloned())
    }

    async fn operator(&self, id: &OperatorId) -> StoreResult<Option<Operator>> {
        Ok(self.catalog_read().operators.get(id).cloned())
    }

    async fn put_profile_type(&self, t: &ProfileTypeRecord) -> StoreResult<()> {
        let mut c = self
            .inner
            .catalog
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if !c.operators.contains_key(&t.operator) {
            return Err(StoreError::Conflict(format!(
                "no operator {} for profile type {}",
                t.operator, t.name
            )));
        }
        let stored = c
            .types
            .get(&t.operator)
            .and_then(|types| types.get(&t.name))
            .map_or(0, Vec::len);
        let next = u32::try_from(stored).unwrap_or(u32::MAX).saturating_add(1);
        if t.version != next {
            return Err(StoreError::Conflict(format!(
                "profile type {} is at version {}; the next version is {next}, not {}",
                t.name,
                next - 1,
                t.version
            )));
        }
        c.types
            .entry(t.operator.clone())
            .or_default()
            .entry(t.name.clone())
            .or_default()
            .push(t.clone());
        Ok(())
    }

    async fn profile_type(
        &self,
        operator: &OperatorId,
        name: &str,
    ) -> StoreResult<Option<ProfileTypeRecord>> {
        Ok(self
            .catalog_read()
            .types
            .get(operator)
            .and_then(|types| types.get(name))
            .and_then(|versions| versions.last())
            .cloned())
    }

    async fn profile_type_version(
        &self,
        operator: &OperatorId,
        name: &str,
        version: u32,
    ) -> StoreResult<Option<ProfileTypeRecord>> {
        let index = usize::try_from(version).ok().and_then(|v| v.checked_sub(1));
        Ok(self
            .catalog_read()
            .types
            .get(operator)
            .and_then(|types| types.get(name))
            .and_then(|versions| index.and_then(|i| versions.get(i)))
            .cloned())
    }
}
