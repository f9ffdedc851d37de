// The official Unkey SDK (@unkey/api) against a real `keyway serve`.
//
// The SDK validates every response against Unkey's schemas, so a field of the wrong type,
// or a `null` where the spec says "optional", fails these tests. The server is started
// here on an ephemeral port with a fresh SQLite database.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { createHash, randomBytes } from "node:crypto";
import { Unkey } from "@unkey/api";

const bin = process.env.KEYWAY_BIN ?? "target/debug/keyway";
const rootKey = "root_sdk_" + Math.random().toString(36).slice(2);
let dir, server, unkey;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "keyway-sdk-"));
  server = spawn(bin, ["serve", "--listen", "127.0.0.1:0", "--log-format", "json"], {
    env: { ...process.env, KEYWAY_DATABASE_URL: `sqlite://${join(dir, "k.db")}`, KEYWAY_ROOT_KEY: rootKey, KEYWAY_EVENT_FLUSH_MS: "50", KEYWAY_ENCRYPTION_KEY: randomBytes(32).toString("base64") },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const addr = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("keyway did not start within 30 s")), 30000);
    server.on("exit", (code) => reject(new Error(`keyway exited early (${code}); is it built? (${bin})`)));
    createInterface({ input: server.stderr }).on("line", (line) => {
      try {
        const v = JSON.parse(line);
        if (v.fields?.message === "listening") {
          clearTimeout(timer);
          resolve(v.fields.addr);
        }
      } catch {}
    });
  });
  unkey = new Unkey({ rootKey, serverURL: `http://${addr}`, retryConfig: { strategy: "none" } });
});

after(() => {
  server?.kill("SIGTERM");
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("apis.createApi and keys.createKey", async () => {
  const api = await unkey.apis.createApi({ name: "sdk-api" });
  assert.match(api.data.apiId, /^api_/);
  const key = await unkey.keys.createKey({ apiId: api.data.apiId, prefix: "sdk", name: "first" });
  assert.match(key.data.key, /^sdk_/);
  const v = await unkey.keys.verifyKey({ key: key.data.key });
  assert.equal(v.data.valid, true);
  assert.equal(v.data.code, "VALID");
  assert.equal(v.data.keyId, key.data.keyId);
});

test("keys.verifyKey with credits, permissions, ratelimits and expiry", async () => {
  const { data: api } = await unkey.apis.createApi({ name: "sdk-verify" });
  const { data: k } = await unkey.keys.createKey({
    apiId: api.apiId,
    credits: { remaining: 2, refill: { interval: "daily", amount: 2 } },
    permissions: ["docs.read", "docs.write"],
    ratelimits: [{ name: "requests", limit: 10, duration: 60000, autoApply: true }],
    externalId: "sdk-user",
    meta: { plan: "pro" },
  });
  let v = await unkey.keys.verifyKey({ key: k.key, permissions: "docs.read AND docs.write" });
  assert.equal(v.data.code, "VALID");
  assert.equal(v.data.credits, 1);
  assert.deepEqual(v.data.meta, { plan: "pro" });
  assert.equal(v.data.identity?.externalId, "sdk-user");
  assert.equal(v.data.ratelimits?.[0]?.remaining, 9);
  v = await unkey.keys.verifyKey({ key: k.key, permissions: "admin" });
  assert.equal(v.data.code, "INSUFFICIENT_PERMISSIONS");
  v = await unkey.keys.verifyKey({ key: k.key, credits: { cost: 1 } });
  assert.equal(v.data.credits, 0);
  v = await unkey.keys.verifyKey({ key: k.key });
  assert.equal(v.data.code, "USAGE_EXCEEDED");

  const { data: limited } = await unkey.keys.createKey({
    apiId: api.apiId,
    ratelimits: [{ name: "tight", limit: 1, duration: 60000, autoApply: true }],
  });
  await unkey.keys.verifyKey({ key: limited.key });
  v = await unkey.keys.verifyKey({ key: limited.key });
  assert.equal(v.data.code, "RATE_LIMITED");

  const { data: expiring } = await unkey.keys.createKey({ apiId: api.apiId, expires: Date.now() + 300 });
  v = await unkey.keys.verifyKey({ key: expiring.key });
  assert.equal(v.data.code, "VALID");
  assert.equal(typeof v.data.expires, "number");
  await new Promise((r) => setTimeout(r, 400));
  v = await unkey.keys.verifyKey({ key: expiring.key });
  assert.equal(v.data.code, "EXPIRED");

  v = await unkey.keys.verifyKey({ key: "sdk_does_not_exist" });
  assert.equal(v.data.code, "NOT_FOUND");
});

test("keys.updateKey, keys.updateCredits, keys.getKey", async () => {
  const { data: api } = await unkey.apis.createApi({ name: "sdk-update" });
  const { data: k } = await unkey.keys.createKey({ apiId: api.apiId, name: "before", credits: { remaining: 5 } });
  await unkey.keys.updateKey({ keyId: k.keyId, name: "after", meta: { a: 1 }, enabled: true });
  let got = await unkey.keys.getKey({ keyId: k.keyId });
  assert.equal(got.data.name, "after");
  assert.equal(got.data.credits?.remaining, 5);
  const c = await unkey.keys.updateCredits({ keyId: k.keyId, operation: "increment", value: 10 });
  assert.equal(c.data.remaining, 15);
  const unlimited = await unkey.keys.updateCredits({ keyId: k.keyId, operation: "set", value: null });
  assert.equal(unlimited.data.remaining, null);
  await unkey.keys.updateKey({ keyId: k.keyId, enabled: false });
  const v = await unkey.keys.verifyKey({ key: k.key });
  assert.equal(v.data.code, "DISABLED");
  await unkey.keys.updateKey({ keyId: k.keyId, name: null });
  got = await unkey.keys.getKey({ keyId: k.keyId });
  assert.equal(got.data.name, undefined);
});

test("apis.listKeys pagination", async () => {
  const { data: api } = await unkey.apis.createApi({ name: "sdk-list" });
  const ids = new Set();
  for (let i = 0; i < 5; i++) ids.add((await unkey.keys.createKey({ apiId: api.apiId })).data.keyId);
  const seen = [];
  const first = await unkey.apis.listKeys({ apiId: api.apiId, limit: 2 });
  for await (const page of first) {
    assert.ok(page.result.data.length <= 2);
    for (const key of page.result.data) seen.push(key.keyId);
  }
  assert.equal(seen.length, 5);
  assert.deepEqual(new Set(seen), ids);
});

test("keys.deleteKey", async () => {
  const { data: api } = await unkey.apis.createApi({ name: "sdk-delete" });
  const { data: k } = await unkey.keys.createKey({ apiId: api.apiId });
  await unkey.keys.deleteKey({ keyId: k.keyId });
  const v = await unkey.keys.verifyKey({ key: k.key });
  assert.equal(v.data.code, "NOT_FOUND");
  await assert.rejects(unkey.keys.getKey({ keyId: k.keyId }), (e) => e.statusCode === 404 || /404/.test(String(e)));
});

test("ratelimit.limit", async () => {
  const req = { namespace: "sdk", identifier: "user", limit: 2, duration: 60000 };
  assert.equal((await unkey.ratelimit.limit(req)).data.success, true);
  assert.equal((await unkey.ratelimit.limit(req)).data.success, true);
  const denied = await unkey.ratelimit.limit(req);
  assert.equal(denied.data.success, false);
  assert.equal(denied.data.remaining, 0);
  assert.equal(typeof denied.data.reset, "number");
});

test("analytics.getVerifications and analytics.getRatelimits", async () => {
  const { data: api } = await unkey.apis.createApi({ name: "sdk-analytics" });
  const { data: k } = await unkey.keys.createKey({ apiId: api.apiId });
  for (let i = 0; i < 3; i++) await unkey.keys.verifyKey({ key: k.key, tags: ["plan=pro"] });
  await unkey.ratelimit.limit({ namespace: "sdk-analytics", identifier: "u", limit: 1, duration: 60000 });
  await unkey.ratelimit.limit({ namespace: "sdk-analytics", identifier: "u", limit: 1, duration: 60000 });
  // Events land in batches; poll until the three verifications are readable.
  const query = `SELECT outcome, SUM(count) AS total FROM key_verifications_per_minute_v1 WHERE key_id = '${k.keyId}' AND has(tags, 'plan=pro') GROUP BY outcome`;
  let rows = [];
  for (let i = 0; i < 100 && Number(rows[0]?.total ?? 0) < 3; i++) {
    rows = (await unkey.analytics.getVerifications({ query })).data;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.deepEqual(rows, [{ outcome: "VALID", total: 3 }]);
  const rl = await unkey.analytics.getRatelimits({
    query: "SELECT SUM(passed) AS passed, SUM(total) AS total FROM ratelimits_per_hour_v1 WHERE namespace_id = 'sdk-analytics'",
  });
  assert.deepEqual(rl.data, [{ passed: 1, total: 2 }]);
  await assert.rejects(
    unkey.analytics.getVerifications({ query: "SELECT * FROM keys" }),
    (e) => e.statusCode === 400 && /keys/.test(String(e.body ?? e.message)),
  );
});

test("keys.migrateKeys: keys hashed as Unkey hashes them verify with their plaintext", async () => {
  const { data: api } = await unkey.apis.createApi({ name: "sdk-migrate" });
  const plain = "legacy_" + randomBytes(12).toString("hex");
  const hash = createHash("sha256").update(plain).digest("base64");
  const { data } = await unkey.keys.migrateKeys({
    migrationId: "sha256_base64",
    apiId: api.apiId,
    keys: [{ hash, name: "moved", externalId: "sdk-migrated", credits: { remaining: 3 } }],
  });
  assert.equal(data.failed.length, 0);
  assert.equal(data.migrated[0].hash, hash);
  const v = await unkey.keys.verifyKey({ key: plain });
  assert.equal(v.data.code, "VALID");
  assert.equal(v.data.keyId, data.migrated[0].keyId);
  assert.equal(v.data.credits, 2);
  const again = await unkey.keys.migrateKeys({ migrationId: "sha256_base64", apiId: api.apiId, keys: [{ hash }] });
  assert.deepEqual(again.data.failed, [hash]);
});

test("permissions.setRolePermissions", async () => {
  const { data: role } = await unkey.permissions.createRole({ name: "sdk-role-" + randomBytes(4).toString("hex") });
  const { data } = await unkey.permissions.setRolePermissions({ roleId: role.roleId, permissions: ["sdk.read", "sdk.write"] });
  assert.deepEqual(data.map((p) => p.slug).sort(), ["sdk.read", "sdk.write"]);
  const cleared = await unkey.permissions.setRolePermissions({ roleId: role.roleId, permissions: [] });
  assert.deepEqual(cleared.data, []);
});

test("keys.getKey with decrypt returns a recoverable key", async () => {
  const { data: api } = await unkey.apis.createApi({ name: "sdk-recover" });
  const { data: k } = await unkey.keys.createKey({ apiId: api.apiId, recoverable: true });
  const { data } = await unkey.keys.getKey({ keyId: k.keyId, decrypt: true });
  assert.equal(data.plaintext, k.key);
  const plain = await unkey.keys.getKey({ keyId: k.keyId });
  assert.equal(plain.data.plaintext, undefined);
});

test("errors come back as typed SDK errors", async () => {
  await assert.rejects(unkey.apis.getApi({ apiId: "api_doesnotexist" }), (e) => e.statusCode === 404);
  const bad = new Unkey({ rootKey: "root_wrong", serverURL: unkey._options.serverURL, retryConfig: { strategy: "none" } });
  await assert.rejects(bad.keys.verifyKey({ key: "x" }), (e) => e.statusCode === 401);
});
