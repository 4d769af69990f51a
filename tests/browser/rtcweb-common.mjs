// What the RTCWeb gateway's browser tests share: headless Chromium with a fake microphone
// whose WebRTC may use loopback, and a bounded wait on the gateway page's state
// (window.__rtc) that says where the page was when it times out.
import { chromium } from 'playwright-core';

/// Chromium for calls on one machine with no other network: fake media devices, loopback
/// host candidates as addresses (not mDNS names).
export function launch(timeout) {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
      '--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns'],
    timeout,
  });
}

/// Waits (at most `wait` ms) until `fn(arg)` holds in the gateway page; on a timeout the error
/// carries the page's call state, media state, events and RTCPeerConnection state.
export async function until(page, what, fn, arg, wait) {
  await page.waitForFunction(fn, arg, { timeout: wait }).catch(async (e) => {
    const s = await page.evaluate(() => ({
      state: window.__rtc.state, media: window.__rtc.media, events: window.__rtc.events,
      pc: window.__rtc.pc && window.__rtc.pc.connectionState,
    }));
    throw new Error(`${what}: ${e.message}\npage: ${JSON.stringify(s, null, 1)}`);
  });
}
