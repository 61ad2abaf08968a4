// Debian's Chromium for the browser tests (through playwright-core, never a downloaded browser),
// and the flags of DESIGN.md §5 it runs with.
export const CHROMIUM = process.env['IMMUNIZE_CHROMIUM'] ?? '/usr/bin/chromium';
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
