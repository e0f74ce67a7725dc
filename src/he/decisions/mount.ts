/**
 * Mounts `POST /he/decide` and `POST /he/aggregate` on the public provider (beside Veil's other
 * own endpoints, before oidc-provider's routes). The provider is rebuilt when the signing keys
 * rotate; the budgets and the rate must not be: they are kept per process, for as long as its
 * service registry lives (a WeakMap on it), in Redis or, embedded, in this process's memory.
 */
import type Provider from 'oidc-provider';
import type { JWTVerifyGetKey } from 'jose';
import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import { createLimiter } from '../../abuse/limiter.js';
import type { SigningJwk } from '../../crypto/keys.js';
import type { Liveness } from '../../oidc/introspection.js';
import { CallerAuthenticator } from '../../oidc/token-endpoints.js';
import type { TokenLookup } from '../../oidc/token-lookup.js';
import { publicJwks } from '../../oidc/token-services.js';
import type { Services } from '../../services.js';
import { envelopeAtRest } from '../../store/at-rest.js';
import { HePolicyRepository } from '../../store/he-policies.js';
import { aggregateEndpoint } from './aggregate.js';
import { MemoryDecisionState, RedisDecisionState, type DecisionState } from './budgets.js';
import { decideEndpoint, type HeSecrets } from './decide.js';
import { DecisionSigner } from './decision-token.js';
import { HeTokenResolver } from './he-token.js';

interface ProcessState {
  state: DecisionState;
  rate: RateLimiterAbstract;
  policies: HePolicyRepository;
}

const perProcess = new WeakMap<Services, ProcessState>();

function processState(services: Services): ProcessState {
  let state = perProcess.get(services);
  if (!state) {
    const { config, redis, envelope } = services;
    const keyPrefix = config.redis?.keyPrefix ?? '';
    const atRest = envelopeAtRest(envelope);
    state = {
      state: redis ? new RedisDecisionState(redis, keyPrefix, atRest) : new MemoryDecisionState(atRest),
      rate: createLimiter('he-node', config.heDecisions.perNodePerMinute, 60, redis && { client: redis, keyPrefix }),
      policies: new HePolicyRepository(services.database.prisma),
    };
    perProcess.set(services, state);
  }
  return state;
}

export interface HeDecisionMount {
  services: Services;
  keys: HeSecrets;
  signingKeys: SigningJwk[];
  tokens: TokenLookup;
  liveness: Liveness;
  clientKeySet?: ((uri: URL) => JWTVerifyGetKey) | undefined;
}

export function mountHeDecisions(provider: Provider, deps: HeDecisionMount): void {
  const { config, events, tokens } = deps.services;
  const { state, rate, policies } = processState(deps.services);
  const callers = new CallerAuthenticator({ issuer: config.issuer, provider, registry: tokens.registry, remoteKeySet: deps.clientKeySet });
  const resolver = new HeTokenResolver({
    issuer: config.issuer,
    tokens: deps.tokens,
    liveness: deps.liveness,
    publicKeys: publicJwks(deps.signingKeys),
    signingAlgs: [...new Set(deps.signingKeys.map((k) => k.alg))],
    resource: (identifier) => tokens.registry.find(identifier),
  });
  const signer = new DecisionSigner(config.issuer, deps.signingKeys);
  const find = (id: string) => policies.find(id);
  const common = { callers, resolver, policies: find, keys: deps.keys, state, rate, signer, events };
  provider.use(decideEndpoint({ ...common, perSubjectPerDay: config.heDecisions.perSubjectPerDay }));
  provider.use(
    aggregateEndpoint({
      ...common,
      minSubjects: config.heDecisions.aggregateMinSubjects,
      maxTokens: config.heDecisions.aggregateMaxTokens,
      windowSeconds: config.heDecisions.aggregateWindowSeconds,
      noiseScale: config.heDecisions.aggregateNoiseScale,
    }),
  );
}
