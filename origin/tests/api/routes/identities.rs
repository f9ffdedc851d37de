//! The identity routes.

use serde_json::json;

use crate::both;

mod status_200 {
    use super::*;

    both!(create_get_update_list_delete, |srv| {
        srv.ok(
            "/v2/identities.createIdentity",
            json!({"externalId": "acme", "meta": {"tier": 1}}),
        )
        .await;
        let i = srv
            .ok("/v2/identities.getIdentity", json!({"identity": "acme"}))
            .await;
        assert_eq!(i["meta"], json!({"tier": 1}));
        let i = srv.ok("/v2/identities.updateIdentity", json!({"identity": "acme", "meta": {"tier": 2}, "ratelimits": [{"name": "rps", "limit": 5, "duration": 1000}]})).await;
        assert_eq!(i["ratelimits"][0]["name"], "rps");
        let (_, list) = srv.call("/v2/identities.listIdentities", json!({})).await;
        assert_eq!(list["data"].as_array().unwrap().len(), 1);
        srv.ok("/v2/identities.deleteIdentity", json!({"identity": "acme"}))
            .await;
        assert_eq!(
            srv.status("/v2/identities.getIdentity", json!({"identity": "acme"}))
                .await,
            404
        );
    });
}
