/**
 * Codes and refresh tokens are single-use even under concurrency: the consume in Redis is one
 * atomic step, so of N simultaneous redemptions exactly one wins (the rest get invalid_grant).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { httpAuthorizationCodeFlow, httpAuthorize, tokenRequest, type HttpFlowClient } from '../helpers/http-flow.js';
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
      const results = await Promise.all(
        Array.from({ length: 5 }, () => tokenRequest(client, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token })),
      );
      const winners = results.filter((r) => r.status === 200);
      assert.ok(winners.length <= 1, `round ${round}: ${winners.length} refreshes succeeded`);
      for (const loser of results.filter((r) => r.status !== 200)) {
        assert.equal(loser.status, 400);
        assert.equal(loser.body.error, 'invalid_grant');
      }
    }
  });

  test('concurrent redemptions of one authorization code: exactly one succeeds', async () => {
    const { code, verifier } = await httpAuthorize(client, user, 'openid');
    const results = await Promise.all(
      Array.from({ length: 6 }, () =>
        tokenRequest(client, { grant_type: 'authorization_code', code, redirect_uri: client.redirectUri, code_verifier: verifier }),
      ),
    );
    assert.equal(results.filter((r) => r.status === 200).length, 1);
    for (const r of results.filter((x) => x.status !== 200)) assert.equal(r.body.error, 'invalid_grant');
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
