/**
 * The aggregate noise (src/he/decisions/noise.ts): discrete Laplace of scale b has mean 0,
 * variance 2α/(1−α)² with α = e^(−1/b), and P(0) = (1−α)/(1+α); scale 0 adds nothing.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { discreteLaplace } from '../../src/he/decisions/noise.js';

test('discrete Laplace noise has the documented distribution', () => {
  for (const b of [0.5, 2, 10]) {
    const n = 40_000;
    const alpha = Math.exp(-1 / b);
    let sum = 0;
    let squares = 0;
    let zeros = 0;
    for (let i = 0; i < n; i++) {
      const x = Number(discreteLaplace(b));
      assert.ok(Number.isInteger(x));
      sum += x;
      squares += x * x;
      if (x === 0) zeros++;
    }
    const variance = (2 * alpha) / (1 - alpha) ** 2;
    const mean = sum / n;
    // Mean within 5 standard errors; variance and P(0) within 10%.
    assert.ok(Math.abs(mean) < 5 * Math.sqrt(variance / n), `b=${b}: mean ${mean}`);
    assert.ok(Math.abs(squares / n - variance) / variance < 0.1, `b=${b}: variance ${squares / n} vs ${variance}`);
    const p0 = (1 - alpha) / (1 + alpha);
    assert.ok(Math.abs(zeros / n - p0) / p0 < 0.1, `b=${b}: P(0) ${zeros / n} vs ${p0}`);
  }
  assert.equal(discreteLaplace(0), 0n);
});
