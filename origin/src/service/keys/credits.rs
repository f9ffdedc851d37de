//! `keys.updateCredits`: a balance set, raised or lowered from its live value.

use crate::service::Caller;
use crate::service::validate::Validate;
use keyway_core::api::keys::{CreditOperation, KeyCreditsData, UpdateCreditsRequest};
use keyway_core::auth::Action;
use keyway_core::credits::CreditBalance;
use keyway_core::error::{ApiError, ValidationIssue};
use keyway_core::validate::Issues;
use serde::Serialize;

use crate::error::AppError;
use crate::ids;
use crate::service::resources::{key_for, snapshot_for};
use crate::service::validate;
use crate::service::views::refill_data;
use crate::store::KeyUpdate;

pub async fn update_credits(
    caller: &Caller<'_>,
    req: UpdateCreditsRequest,
) -> Result<impl Serialize, AppError> {
    let row = key_for(caller, &req.key_id, Action::UpdateKey).await?;
    let snap = snapshot_for(caller.state, &row).await?;
    let now = ids::now_ms();
    if req.operation != CreditOperation::Set && snap.credits.is_none() {
        return Err(AppError::Client(ApiError::invalid_input(
            "The key has unlimited credits; set a value before incrementing or decrementing.",
            vec![ValidationIssue::new(
                "body.operation",
                "cannot change unlimited credits",
            )],
        )));
    }
    let refill = snap.credits.and_then(|c| c.refill);
    let stored = snap.credits.map(|c| c.balance);
    let new = caller
        .state
        .change_credits(&row.id, stored, |live| {
            let live = live.map(|b| b.refilled(refill.as_ref(), now));
            let base = live.unwrap_or(CreditBalance {
                remaining: 0,
                last_refill_at: now,
            });
            match (req.operation, req.value) {
                (CreditOperation::Set, None) => None,
                (CreditOperation::Set, Some(v)) => Some(CreditBalance {
                    remaining: v,
                    ..base
                }),
                (CreditOperation::Increment, v) => Some(CreditBalance {
                    remaining: base.remaining.saturating_add(v.unwrap_or(0)),
                    ..base
                }),
                (CreditOperation::Decrement, v) => Some(CreditBalance {
                    remaining: base.remaining.saturating_sub(v.unwrap_or(0)),
                    ..base
                }),
            }
        })
        .await?;
    if new.is_none() {
        // Unlimited now: the refill no longer means anything.
        let clear = KeyUpdate {
            refill: Some(None),
            ..KeyUpdate::default()
        };
        caller
            .store()
            .update_key(&row.id, caller.workspace_id(), &clear, now)
            .await?
    }
    caller.state.forget([row.hash.as_str()]).await;
    Ok(KeyCreditsData {
        remaining: new.map(|b| b.remaining),
        refill: if new.is_some() {
            refill.as_ref().map(refill_data)
        } else {
            None
        },
    })
}

impl Validate for UpdateCreditsRequest {
    fn issues(&self, v: &mut Issues) {
        validate::key_id(v, &self.key_id);
        if self.operation != CreditOperation::Set {
            v.check(self.value.is_some(), "body.value", || {
                "is required for increment and decrement".into()
            });
        }
    }
}
