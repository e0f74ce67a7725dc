/**
 * Codes and refresh tokens are single-use even under concurrency: the consume in Redis is one
 * atomic step, so of N simultaneous redemptions at most one wins (the rest get invalid_grant).
 * A lost consume is reuse: the grant is revoked, the winner's tokens with it (RFC 9700
 * §4.14.2, RFC 6749 §4.1.2).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { httpAuthorizationCodeFlow, httpAuthorize, tokenRequest, type HttpFlowClient } from '../helpers/http-flow.js';
import { rememberSecret } from '../helpers/secrets.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

const user = { email: 'race@example.com', password: 'racing is fun 123' };

describe('single use under concurrency (real Redis)', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let client: HttpFlowClient;

  before(async () => {
    stores = await createTestStores();
    veil = await startTestVeil(stores);
    await veil.admin('POST', '/admin/users', user);
    const c = await veil.admin<{ client: { client_id: string }; client_secret: string }>('POST', '/admin/clients', {
      client_name: 'racer',
      redirect_uris: ['https://app.example/cb'],
      scope: 'openid offline_access',
    });
    client = { issuer: veil.issuer, clientId: c.body.client.client_id, clientSecret: c.body.client_secret, redirectUri: 'https://app.example/cb' };
  });

  after(async () => {
    await veil?.stop();
    await stores?.cleanup();
  });

  test('concurrent refreshes of one refresh token: at most one succeeds (20 rounds)', async () => {
    for (let round = 0; round < 20; round++) {
      const tokens = await httpAuthorizationCodeFlow(client, user);
      const results = await Promise.all(Array.from({ length: 5 }, () => tokenRequest(client, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token })));
      const winners = results.filter((r) => r.status === 200);
      assert.ok(winners.length <= 1, `round ${round}: ${winners.length} refreshes succeeded`);
      for (const loser of results.filter((r) => r.status !== 200)) {
        assert.equal(loser.status, 400);
        assert.equal(loser.body.error, 'invalid_grant');
      }
    }
  });

  test('concurrent redemptions of one authorization code: at most one succeeds', async () => {
    const { code, verifier } = await httpAuthorize(client, user, 'openid');
    const results = await Promise.all(
      Array.from({ length: 6 }, () => tokenRequest(client, { grant_type: 'authorization_code', code, redirect_uri: client.redirectUri, code_verifier: verifier })),
    );
    assert.ok(results.filter((r) => r.status === 200).length <= 1);
    for (const r of results.filter((x) => x.status !== 200)) assert.equal(r.body.error, 'invalid_grant');
  });

  /** Whether a token is active, asked by the client it was issued to. */
  async function active(token: string): Promise<boolean> {
    rememberSecret(client.clientSecret, 'client secret');
    const res = await fetch(`${veil.issuer}/token/introspection`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret}`).toString('base64')}`,
      },
      body: new URLSearchParams({ token }).toString(),
    });
    assert.equal(res.status, 200);
    return ((await res.json()) as { active: boolean }).active;
  }

  /** Audit rows of concurrent reuse (the lost-consume path, not oidc-provider's sequential check). */
  async function concurrentReuses(): Promise<number> {
    const res = await veil.admin<{ events: { details?: { concurrent?: boolean } }[] }>('GET', '/admin/audit?since=2000-01-01T00:00:00Z&type=token.reused&limit=1000');
    return res.status === 200 ? res.body.events.filter((e) => e.details?.concurrent === true).length : 0;
  }

  /** The audit row is written after the response: wait a little for it. */
  async function concurrentReusesAbove(count: number): Promise<boolean> {
    for (let i = 0; i < 50; i++) {
      if ((await concurrentReuses()) > count) return true;
      await new Promise((r) => setTimeout(r, 20));
    }
    return false;
  }

  test("a lost concurrent refresh revokes the grant: the winner's new tokens die too (20 rounds)", async () => {
    let rounds200 = 0;
    for (let round = 0; round < 20; round++) {
      const tokens = await httpAuthorizationCodeFlow(client, user);
      const results = await Promise.all(Array.from({ length: 2 }, () => tokenRequest(client, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token })));
      const winners = results.filter((r) => r.status === 200);
      assert.ok(winners.length <= 1, `round ${round}: ${winners.length} refreshes succeeded`);
      for (const loser of results.filter((r) => r.status !== 200)) assert.deepEqual([loser.status, loser.body.error], [400, 'invalid_grant']);
      // Whichever request lost, the grant is gone: the first access token, and the winner's pair.
      assert.equal(await active(tokens.access_token), false, `round ${round}: the grant survived the race`);
      for (const w of winners) {
        rounds200++;
        assert.equal(await active(w.body.access_token!), false, `round ${round}: the winner's access token is live`);
        assert.equal(await active(w.body.refresh_token!), false, `round ${round}: the winner's refresh token is live`);
        const again = await tokenRequest(client, { grant_type: 'refresh_token', refresh_token: w.body.refresh_token! });
        assert.deepEqual([again.status, again.body.error], [400, 'invalid_grant'], `round ${round}: the winner can still refresh`);
      }
    }
    // The race was real: some consume was lost concurrently (audited as such), and some round had a winner.
    assert.ok(await concurrentReusesAbove(0), 'no round raced past the consumed check');
    assert.ok(rounds200 >= 1, 'no round had a winner');
  });

  test('an authorization code redeemed twice concurrently revokes the tokens issued from it (10 rounds)', async () => {
    const before = await concurrentReuses();
    let rounds200 = 0;
    for (let round = 0; round < 10; round++) {
      const { code, verifier } = await httpAuthorize(client, user, 'openid offline_access');
      const results = await Promise.all(
        Array.from({ length: 2 }, () => tokenRequest(client, { grant_type: 'authorization_code', code, redirect_uri: client.redirectUri, code_verifier: verifier })),
      );
      const winners = results.filter((r) => r.status === 200);
      assert.ok(winners.length <= 1, `round ${round}: ${winners.length} redemptions succeeded`);
      for (const loser of results.filter((r) => r.status !== 200)) assert.deepEqual([loser.status, loser.body.error], [400, 'invalid_grant']);
      for (const w of winners) {
        rounds200++;
        assert.equal(await active(w.body.access_token!), false, `round ${round}: the winner's access token is live`);
        assert.equal(await active(w.body.refresh_token!), false, `round ${round}: the winner's refresh token is live`);
      }
    }
    assert.ok(await concurrentReusesAbove(before), 'no round raced past the consumed check');
    assert.ok(rounds200 >= 1, 'no round had a winner');
  });

  test('reusing a rotated refresh token revokes the grant: the newest one stops working too', async () => {
    const tokens = await httpAuthorizationCodeFlow(client, user);
    const rotated = await tokenRequest(client, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token });
    assert.equal(rotated.status, 200);
    const reuse = await tokenRequest(client, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token });
    assert.equal(reuse.body.error, 'invalid_grant');
    const next = await tokenRequest(client, { grant_type: 'refresh_token', refresh_token: rotated.body.refresh_token! });
    assert.equal(next.status, 400);
    assert.equal(next.body.error, 'invalid_grant');
  });
});
