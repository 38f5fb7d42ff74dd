// A WAV file for Chromium's fake microphone: 48 kHz mono 16-bit, a few tones in turn so the
// audio has real energy (a missing or silent file would give a live but silent track).

import { writeFileSync } from 'node:fs';

/**
 * @param {string} path
 * @param {number} seconds
 * @param {number[]} tones Hz, one per second in turn (give each page its own to tell them apart)
 */
export function writeToneWav(path, seconds = 10, tones = [330, 440, 550]) {
  const rate = 48_000;
  const samples = rate * seconds;
  const data = Buffer.alloc(samples * 2);
  for (let i = 0; i < samples; i++) {
    const freq = tones[Math.floor(i / rate) % tones.length];
    data.writeInt16LE(Math.round(Math.sin((2 * Math.PI * freq * i) / rate) * 9000), i * 2);
  }
  const header = Buffer.alloc(44);
  header.write('RIFF', 0);
  header.writeUInt32LE(36 + data.length, 4);
  header.write('WAVE', 8);
  header.write('fmt ', 12);
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // mono
  header.writeUInt32LE(rate, 24);
  header.writeUInt32LE(rate * 2, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write('data', 36);
  header.writeUInt32LE(data.length, 40);
  writeFileSync(path, Buffer.concat([header, data]));
}
