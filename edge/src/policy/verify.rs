//! What a verification at the edge and a shadow comparison share: authenticate the
//! caller, find the key, and the core's one decision, `keyway_core::verify::plan`.
//!
//! A [`Plan::Decided`] is answered at the edge; a [`Plan::Admit`] needs the origin's
//! counters (credits, rate limits) and is forwarded there.

use keyway_core::api::keys::VerifyKeyRequest;
use keyway_core::auth::RootScope;
use keyway_core::error::ApiError;
use keyway_core::freshness::{CacheStatus, Stale};
use keyway_core::key::KeyHash;
use keyway_core::permission::Query;
use keyway_core::verify::{Plan, plan};

use super::lookup::{CacheApi, Host, Origin, Snapshot, Snapshots};

/// A caller who may verify keys, and the key they asked about.
pub struct Prepared {
    pub caller: RootScope,
    pub snapshot: Snapshot,
    /// Where the key's snapshot came from, for `x-keyway-cache`.
    pub status: CacheStatus,
}

impl<C: CacheApi, O: Origin, H: Host> Snapshots<C, O, H> {
    /// Authenticates first: an unknown root key must not make the edge look the key up,
    /// nor cost the origin a key lookup. When the root key needs the origin anyway, the
    /// key comes in the same call, and only if the root key authenticates there.
    pub async fn prepare(&self, root_hash: &KeyHash, hash: &KeyHash) -> Result<Prepared, O::Error> {
        let (root, prefetched) = self.lookup_root(root_hash, hash).await?;
        let caller = RootScope::from_snapshot(root, self.host.now_ms() as i64)?;
        caller.require_verifier()?;
        let (snapshot, status) = match prefetched {
            Some(snapshot) => (snapshot, CacheStatus::Miss),
            None => self.lookup(hash, Stale::Serve).await?,
        };
        Ok(Prepared {
            caller,
            snapshot,
            status,
        })
    }
}

impl Prepared {
    pub fn plan(
        &self,
        request: &VerifyKeyRequest,
        query: Option<&Query>,
        now_ms: i64,
    ) -> Result<Plan<'_>, ApiError> {
        plan(
            self.snapshot.as_deref(),
            request,
            query,
            &self.caller,
            now_ms,
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use keyway_core::api::keys::VerifyCode;
    use keyway_core::snapshot::{KeySnapshot, fixtures};

    use super::*;
    use crate::policy::testing::*;

    fn root_snapshot(permissions: &[&str]) -> Snapshot {
        let mut root = fixtures::key();
        root.key_id = "root".into();
        root.for_workspace_id = Some(root.workspace_id.clone());
        root.permissions = permissions.iter().map(|p| p.to_string()).collect();
        Some(Arc::new(root.normalized()))
    }

    fn request() -> VerifyKeyRequest {
        serde_json::from_str(r#"{"key":"x"}"#).unwrap()
    }

    #[test]
    fn decides_what_the_snapshot_can_and_plans_the_rest() {
        let (io, t) = fake();
        io.answers(Ok(root_snapshot(&["api.*.verify_key"])));
        io.answers(Ok(snap("key_1")));
        let prepared = run(t.prepare(&root(), &hash())).unwrap();
        assert_eq!(prepared.status, CacheStatus::Miss);
        match prepared.plan(&request(), None, 0).unwrap() {
            Plan::Decided(v) => assert_eq!(v.data.code, VerifyCode::Valid),
            Plan::Admit(_) => panic!("nothing to count"),
        }
        // A metered key needs the origin's counters.
        let metered = KeySnapshot {
            credits: Some(keyway_core::snapshot::SnapshotCredits {
                balance: keyway_core::credits::CreditBalance {
                    remaining: 1,
                    last_refill_at: 0,
                },
                refill: None,
            }),
            ..fixtures::key()
        };
        let (io, t) = fake();
        io.answers(Ok(root_snapshot(&["api.*.verify_key"])));
        io.answers(Ok(Some(Arc::new(metered))));
        let prepared = run(t.prepare(&root(), &hash())).unwrap();
        assert!(matches!(
            prepared.plan(&request(), None, 0),
            Ok(Plan::Admit(_))
        ));
    }

    #[test]
    fn an_unknown_or_unauthorised_caller_looks_no_key_up() {
        let (io, t) = fake();
        io.answers(Ok(None));
        io.answers(Ok(snap("key_1")));
        assert!(matches!(
            run(t.prepare(&root(), &hash())),
            Err(Fault::Client(401))
        ));
        assert_eq!(io.origin.borrow().len(), 1, "the key was not asked for");
        let (io, t) = fake();
        io.answers(Ok(root_snapshot(&["api.*.read_key"])));
        io.answers(Ok(snap("key_1")));
        let got = run(t.prepare(&root(), &hash()));
        assert!(matches!(got, Err(Fault::Client(403))), "{:?}", got.err());
        assert_eq!(io.fetches.get(), 1);
    }
}
