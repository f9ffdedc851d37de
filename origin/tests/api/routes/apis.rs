//! The API routes: create, get, list keys, delete.

use serde_json::json;

use crate::both;

mod status_200 {
    use super::*;

    both!(create_get_delete, |srv| {
        let api = srv.create_api().await;
        let a = srv.ok("/v2/apis.getApi", json!({"apiId": api})).await;
        assert_eq!(a, json!({"id": api, "name": "test-api"}));

        srv.ok("/v2/apis.deleteApi", json!({"apiId": api})).await;
        assert_eq!(
            srv.status("/v2/apis.getApi", json!({"apiId": api})).await,
            404
        );
    });
}
