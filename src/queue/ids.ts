import type { RandomSource } from '../contracts/clock.js';

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Filled and formatted synchronously by each call: one buffer serves them all (ids are hot). */
const SCRATCH = new Uint8Array(16);

function randomByte(random: RandomSource): number {
  const r = random();
  // A broken source (NaN, 1, negative) must still yield a byte; ids stay well-formed.
  return Number.isFinite(r) ? Math.floor(Math.abs(r) * 256) & 0xff : 0;
}

function format(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) out += '-';
    out += HEX[bytes[i]!];
  }
  return out;
}

/**
 * A UUID version 7 (RFC 9562): 48 bits of Unix milliseconds, then 74 random bits. Sorts by creation
 * time, so ids in logs and support tools read in order.
 */
export function uuidV7(nowMs: number, random: RandomSource): string {
  const bytes = SCRATCH;
  let ms = Math.max(0, Math.floor(nowMs));
  for (let i = 5; i >= 0; i--) {
    bytes[i] = ms % 256;
    ms = Math.floor(ms / 256);
  }
  for (let i = 6; i < 16; i++) bytes[i] = randomByte(random);
  bytes[6] = (bytes[6]! & 0x0f) | 0x70;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  return format(bytes);
}

/** A UUID version 4 (122 random bits): idempotency keys, claim tokens, client ids. */
export function uuidV4(random: RandomSource): string {
  const bytes = SCRATCH;
  for (let i = 0; i < 16; i++) bytes[i] = randomByte(random);
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  return format(bytes);
}
