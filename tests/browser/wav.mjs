// A WAV file for Chromium's fake microphone: 48 kHz mono 16-bit, one constant tone. Each page
// of a call gets its own tone (toneHz), so a page's analyser can tell who it hears: the tones
// are 150 Hz apart, from 400 Hz, and stay below 2 kHz for indices 0..9.

import { writeFileSync } from 'node:fs';

/** The tone page `index` sends (Hz): 400, 550, 700, … 1750 for 0..9. */
export function toneHz(index) {
  return 400 + 150 * index;
}

/**
 * @param {string} path
 * @param {number} seconds Chromium loops the file: a whole number of seconds holds whole
 *   periods of a whole-Hz tone, so the loop is seamless
 * @param {number} hz the one tone, all through
 */
export function writeToneWav(path, seconds = 10, hz = toneHz(0)) {
  const rate = 48_000;
  const samples = rate * seconds;
  const data = Buffer.alloc(samples * 2);
  for (let i = 0; i < samples; i++) {
    data.writeInt16LE(Math.round(Math.sin((2 * Math.PI * hz * i) / rate) * 9000), i * 2);
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
